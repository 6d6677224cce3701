/* dataset.h: the DICOM data set model, the streaming reader, and the
 * Part 10 reader/writer. Pure: all bytes come through struct src and leave
 * through struct sink. Layer: dicom.
 *
 * Values are kept as the raw bytes of the value field, converted to little
 * endian when the source is big endian. Values longer than the caller's
 * bulk threshold stay in the source (DCM_EF_BULK, with their offset) when
 * the source is random access, so a 2 GB multi-frame file is parsed with a
 * small, fixed amount of memory. */
#ifndef DICOMVAULT_DATASET_H
#define DICOMVAULT_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dicomvault/arena.h"
#include "dicomvault/dict.h"
#include "dicomvault/err.h"
#include "dicomvault/io.h"
#include "dicomvault/vr.h"
#include "dicomvault/wbuf.h"

#define DCM_UNDEF 0xFFFFFFFFu

/* Where and why parsing failed (or the first warning). */
struct dcm_errinfo {
	uint64_t offset;     /* byte offset in the file (or inflated data set) */
	bool inflated;       /* offset is in the inflated data set */
	char msg[200];
};

/* ---- streaming reader: one event per element, item or delimiter ---- */

enum dcm_ev_kind {
	DCM_EV_ELEM,         /* value pending: read with dcm_reader_value() or skip */
	DCM_EV_SEQ_BEGIN,
	DCM_EV_ITEM_BEGIN,
	DCM_EV_ITEM_END,
	DCM_EV_SEQ_END,
	DCM_EV_FRAGS_BEGIN,  /* encapsulated pixel data */
	DCM_EV_FRAG,         /* one fragment; value pending */
	DCM_EV_FRAGS_END,
	DCM_EV_EOF
};

struct dcm_ev {
	enum dcm_ev_kind kind;
	uint32_t tag;
	uint16_t vr;
	bool vr_implicit;    /* VR came from the dictionary */
	bool undef_len;      /* the sequence/item/pixel data had undefined length */
	bool un_seq;         /* a UN sequence, contents implicit VR LE */
	bool big;            /* the value is big endian */
	uint32_t len;        /* value length (DCM_UNDEF for undefined) */
	uint64_t off;        /* offset of the element/item header */
	uint64_t val_off;    /* offset of the value */
	unsigned depth;      /* 0 = top level data set */
};

struct dcm_frame;

struct dcm_reader {
	struct src *src;
	uint8_t *buf;
	size_t cap, start, end;    /* valid bytes are buf[start, end) */
	uint64_t pos;              /* stream offset of buf[start] */
	size_t readahead;
	bool eof;
	bool explicit_vr, big_endian;
	bool strict;
	uint64_t val_left;         /* pending value bytes */
	uint64_t limit;            /* top-level data set ends here (or UINT64_MAX) */
	unsigned depth;
	struct dcm_frame *stack;
	uint32_t nelems;
	uint32_t stop_tag;         /* stop before this top-level tag (0: never) */
	struct dcm_errinfo *ei;
	struct dcm_errinfo warn;   /* first warning */
	unsigned nwarn;
	bool inflated;
};

/* The reader starts at the current position of src, which has offset base. */
WUR enum err dcm_reader_init(struct dcm_reader *r, struct src *src, uint64_t base,
                             bool explicit_vr, bool big_endian, struct dcm_errinfo *ei);
void dcm_reader_fini(struct dcm_reader *r);
WUR enum err dcm_reader_next(struct dcm_reader *r, struct dcm_ev *ev);
/* Next n bytes (n <= pending) of the pending value, in source byte order. */
WUR enum err dcm_reader_value(struct dcm_reader *r, void *buf, size_t n);
WUR enum err dcm_reader_skip_value(struct dcm_reader *r);
/* Look at the next n bytes without consuming them (n <= 16). */
WUR enum err dcm_reader_peek(struct dcm_reader *r, size_t n, const uint8_t **p);

/* ---- the data set tree ---- */

enum {
	DCM_EF_UNDEF = 1,    /* SQ, item or pixel data had undefined length */
	DCM_EF_BULK = 2,     /* value not loaded; bulk_off locates it */
	DCM_EF_ENCAPS = 4,   /* encapsulated: value is in seq->frags */
	DCM_EF_UNSEQ = 8,    /* UN of undefined length, read as a sequence */
	DCM_EF_VRFIX = 16    /* VR taken from the dictionary or corrected */
};

struct dcm_ds;
struct dcm_file;

struct dcm_frag {
	uint8_t *val;
	uint32_t len;
	uint16_t flags;      /* DCM_EF_BULK */
	uint64_t bulk_off;
};

struct dcm_seq {
	struct dcm_ds **items;
	uint32_t n, cap;
	struct dcm_frag *frags;   /* encapsulated pixel data: [0] is the offset table */
	uint32_t nfrags, capfrags;
};

struct dcm_elem {
	uint32_t tag;
	uint16_t vr;
	uint16_t flags;
	uint32_t len;        /* value length; for SQ/encapsulated as read (DCM_UNDEF) */
	uint8_t *val;        /* NULL if len == 0, bulk, SQ or encapsulated */
	uint64_t bulk_off;
	struct dcm_seq *seq; /* SQ, UN sequence or encapsulated */
	uint64_t off;        /* header offset in the source */
};

struct dcm_ds {
	struct dcm_elem *e;
	uint32_t n, cap;
	uint16_t flags;      /* DCM_EF_UNDEF: item had undefined length */
	bool unsorted;       /* read in non-ascending tag order */
	uint32_t *order;     /* unsorted: indexes of e[] in tag order (NULL after edits) */
	struct dcm_file *file;
	struct dcm_ds *parent;
};

struct dcm_file {
	struct arena arena;
	uint8_t preamble[128];
	bool has_preamble;
	bool has_meta;
	struct dcm_ds meta;
	struct dcm_ds ds;
	const struct dcm_ts *ts;  /* of ds */
	char ts_uid[65];          /* as found in the meta (may be unknown) */
	struct src *src;          /* borrowed, for bulk values */
	bool bulk_ok;             /* bulk offsets are valid in src */
	uint64_t ds_off;
	uint32_t nelems;
	unsigned nwarn;
	struct dcm_errinfo warn;  /* first warning */
	bool vr_mismatch;         /* ds was read in the other VR encoding than its transfer syntax says (a warning) */
};

struct dcm_read_opts {
	uint32_t bulk_threshold;  /* bulk VR values longer stay in the source; 0 = load all */
	uint32_t stop_tag;        /* stop before this top-level tag; 0 = read all */
	bool strict;              /* warnings (odd lengths, bad padding) are errors */
	bool no_meta;             /* source is a bare data set */
	const struct dcm_ts *ts;  /* for a bare data set; NULL = guess */
};

/* Read a Part 10 file or a bare data set. src must stay open while bulk
 * values are used. On failure *ei says where and why. */
WUR enum err dcm_file_read(struct src *src, const struct dcm_read_opts *o,
                           struct dcm_file **out, struct dcm_errinfo *ei);
void dcm_file_free(struct dcm_file *f);
/* An empty file (explicit VR LE) to build. */
WUR enum err dcm_file_new(struct dcm_file **out);

/* ---- element access and editing ---- */

struct dcm_charset;
/* The Specific Character Set in force for ds (an item inherits its
 * parent's); the default repertoire when absent or not understood. */
void dcm_ds_charset(const struct dcm_ds *ds, struct dcm_charset *cs);

struct dcm_elem *dcm_ds_find(const struct dcm_ds *ds, uint32_t tag);
/* Whether ds itself (not its items) holds an element of group g. */
bool dcm_ds_has_group(const struct dcm_ds *ds, uint16_t g);
/* String value without trailing padding: (pointer, length); NULL if absent. */
const char *dcm_ds_str(const struct dcm_ds *ds, uint32_t tag, size_t *len);
/* Copies a string value into buf (max cap-1 chars, NUL-terminated). */
WUR enum err dcm_ds_get_cstr(const struct dcm_ds *ds, uint32_t tag, char *buf, size_t cap);
WUR enum err dcm_ds_get_u16(const struct dcm_ds *ds, uint32_t tag, uint16_t *v);
/* Insert or replace a value (copied; padded to even length). */
WUR enum err dcm_ds_set(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const void *val, size_t len);
WUR enum err dcm_ds_set_str(struct dcm_ds *ds, uint32_t tag, uint16_t vr, const char *s);
/* Replaces the value of an element of ds in place (it stays where it is). */
WUR enum err dcm_elem_set(struct dcm_ds *ds, struct dcm_elem *e, uint16_t vr, const void *val, size_t len);
/* A new empty sequence element (replacing any existing one). */
WUR enum err dcm_ds_set_seq(struct dcm_ds *ds, uint32_t tag, struct dcm_elem **out);
WUR enum err dcm_seq_add_item(struct dcm_ds *ds, struct dcm_elem *sq, struct dcm_ds **out);
WUR enum err dcm_elem_add_frag(struct dcm_ds *ds, struct dcm_elem *e, const void *val, size_t len);
void dcm_ds_remove(struct dcm_ds *ds, uint32_t tag);
/* A deep copy of element e of file sf (sequences with their items, bulk
 * values loaded) into ds, replacing an element with its tag. Values keep
 * sf's byte order. Encapsulated pixel data: ERR_UNSUPPORTED. depth: 0. */
WUR enum err dcm_ds_copy_elem(struct dcm_ds *ds, const struct dcm_file *sf, const struct dcm_elem *e, unsigned depth);
/* The same, but encapsulated elements (inside items too: an icon's
 * compressed pixels) are left out, and the value bytes loaded are counted
 * against *budget (ERR_LIMIT beyond it): for a native copy of a data set. */
WUR enum err dcm_ds_copy_elem_native(struct dcm_ds *ds, const struct dcm_file *sf, const struct dcm_elem *e,
                                     uint64_t *budget);
/* The value bytes of an element, loading bulk data from the source into
 * memory the caller frees; *owned says whether it must be freed. */
WUR enum err dcm_elem_value(const struct dcm_file *f, const struct dcm_elem *e,
                            const uint8_t **val, bool *owned);
/* Streams a bulk or in-memory value to a sink in chunks. */
WUR enum err dcm_bulk_copy(const struct dcm_file *f, uint64_t off, uint32_t len,
                           const uint8_t *val, struct sink *k);

/* The VR to present an element with: a UN whose tag the dictionary knows
 * (or a private creator) is shown with the dictionary's VR, as pydicom and
 * DCMTK do; sequences, bulk and big values stay UN. */
uint16_t dcm_elem_effective_vr(const struct dcm_ds *ds, const struct dcm_elem *e);

/* Byte-swapping unit of a value between little and big endian. */
unsigned dcm_swap_size(const struct dcm_file *f, uint32_t tag, uint16_t vr);
/* Reverses the bytes of each number of `size` bytes in v (size < 2: none). */
void dcm_swap_bytes(uint8_t *v, size_t len, unsigned size);

/* ---- writer ---- */

struct dcm_write_opts {
	const struct dcm_ts *ts;  /* NULL: the file's own transfer syntax */
	bool keep_meta;           /* write the meta group as read (byte-identical) */
	bool no_preamble;         /* a bare data set (no preamble, no meta) */
};

#define DCM_IMPL_CLASS_UID "2.25.101431291716583383212813563382328598260"
#define DCM_IMPL_VERSION   "DICOMVAULT_010"

WUR enum err dcm_file_write(struct dcm_file *f, const struct dcm_write_opts *o, struct sink *k);
/* Encode a data set alone (no preamble/meta) in the given encoding. */
WUR enum err dcm_ds_write(const struct dcm_file *f, const struct dcm_ds *ds, bool explicit_vr,
                          bool big_endian, struct sink *k);

/* ---- text ---- */

/* dcmdump-like listing. */
WUR enum err dcm_dump(const struct dcm_file *f, struct wbuf *out);

#endif
