/* limits.h: every numeric limit of dicomvault in one place. Layer: base. */
#ifndef DICOMVAULT_LIMITS_H
#define DICOMVAULT_LIMITS_H

/* DICOM parsing */
#define DCM_MAX_DEPTH          32u          /* nested sequences */
#define DCM_MAX_ELEMENTS       (1u << 20)   /* elements in one file, all levels */
#define DCM_MAX_ITEMS          (1u << 20)   /* items in one sequence */
#define DCM_MAX_FRAGMENTS      (1u << 22)   /* pixel data fragments */
#define DCM_MAX_META_LEN       (64u * 1024) /* file meta information group */
#define DCM_MAX_VALUE_INMEM    (256u * 1024 * 1024) /* largest value held in memory */
/* A deflated data set, inflated: it is held in memory whole (no random
 * access into a deflate stream) by every reader of it, so a 255 KB object
 * could pin this much per WADO connection; deflate is for non-image
 * objects in practice (64 MiB since session 23; 256 before) */
#define DCM_MAX_INFLATED       ((unsigned long long)64 << 20)
#define DCM_READ_CHUNK         (256u * 1024)  /* reader buffer */
#define DCM_DEFAULT_BULK       (64u * 1024)   /* values above: left in the source */
#define DCM_MAX_STRING_VM      (1u << 16)   /* values in one multi-valued string */

/* JSON */
#define JSON_MAX_INPUT         (256u * 1024 * 1024)
#define JSON_MAX_DEPTH         64u

/* configuration (INI) */
#define INI_MAX_INPUT          (1u << 20)
#define INI_MAX_LINE           4096u
#define INI_MAX_ENTRIES        10000u
#define INI_MAX_NAME           64u

/* text conversion */
#define CHARSET_MAX_TERMS      8u           /* values in Specific Character Set */

/* crypto */
#define CRYPTO_AEAD_CHUNK_DEFAULT (64u * 1024)       /* plaintext bytes per chunk */
#define CRYPTO_AEAD_CHUNK_MIN  16u                  /* smallest chunk a header may declare */
#define CRYPTO_AEAD_CHUNK_MAX  (4u * 1024 * 1024)   /* largest (allocated before the tag is checked) */
#define CRYPTO_AEAD_AD_MAX     4096u                /* object identity bytes */
#define CRYPTO_SECRET_FILE_MAX 4096u                /* key or passphrase file */
#define CRYPTO_PASSWORD_MAX    1024u                /* password or passphrase bytes */
#define CRYPTO_WRAP_MAX_KEY    64u                  /* bytes of a wrapped key */
#define CRYPTO_WRAP_MAX_LABEL  1024u                /* bytes of a wrapped key's label */
#define CRYPTO_PWHASH_MAX_OPS  64u                  /* Argon2id passes read from a record */
#define CRYPTO_PWHASH_MAX_MEM  ((size_t)4 << 30)    /* Argon2id memory read from a record */
#define CRYPTO_TOTP_LABEL_MAX  256u                 /* issuer or account name in an otpauth URI */

/* http: the HTTPS listener (daemon/http.c) and interactive login (core/auth.c) */
#define HTTP_MAX_JSON_BODY     (64u * 1024)   /* JSON request body (413 beyond) */
/* Answers built whole in memory (rendered images, DICOM JSON...) waiting
 * to be read, all connections together: past it a large one is 503 with
 * Retry-After (a client that does not read held each copy for ever) */
#define HTTP_SEND_BUDGET       ((size_t)256 << 20)
#define HTTP_SEND_SMALL        ((size_t)64 << 10)  /* bodies that are never refused so */
/* one user's share of it (all their sessions and tokens): a single client
 * that does not read cannot hold the whole budget against everyone */
#define HTTP_SEND_USER_SHARE   (HTTP_SEND_BUDGET / 4)
#define HTTP_SEND_USERS        64u   /* users tracked at once (beyond: the budget alone) */
#define HTTP_MAX_UPLOAD        ((uint64_t)64 << 30)   /* STOW-RS body by Content-Length, default ([http] max_upload_mb) */
#define HTTP_MAX_UPLOAD_MB     (1ull << 30)   /* the largest max_upload_mb (1 PiB) */
#define HTTP_BODY_DISCARD_MAX  (1u << 20)     /* bytes of an over-long chunked body read before closing */
#define HTTP_MAX_URL           8192u          /* request path and query (414 beyond) */
#define HTTP_MAX_HEADERS       64u            /* request header fields (431 beyond) */
#define HTTP_CORK_MIN          (1u << 20)     /* bodies from this size: corked, TLS writes gathered */
#define HTTP_PUSH_BUF          (256u * 1024)  /* gathered TLS writes of such a body, per send() */
#define HTTP_SEND_STACK        (256u * 1024)  /* stack of the thread that writes them */
#define HTTP_HOST_MAX          255u           /* HOST of a listen address (http_listen_split) */
#define DW_MAX_SEGS            9u             /* DICOMweb path segments: ./instances/{sop}/frames/{list}/rendered */
#define HTTP_CONN_MEMORY       (320u * 1024)  /* per-connection pool: request line, headers, read buffer
                                                  (HTTP_MAX_URL of one-letter arguments: ~64 bytes each) */
#define HTTP_CONN_TIMEOUT      30u            /* seconds of inactivity, TLS handshake included */
#define HTTP_HEAD_TIMEOUT      10u            /* seconds from accept to a whole first request head */
#define HTTP_ANON_TIMEOUT      30u            /* seconds a connection lives without an authenticated request */
#define HTTP_MAX_CONNECTIONS   64u            /* concurrent connections (one thread each) */
#define HTTP_MAX_PER_IP        16u            /* concurrent connections from one address */
#define HTTP_PROXY_RESERVE     16u            /* of HTTP_MAX_CONNECTIONS, kept for [http] trusted_proxies */
#define HTTP_THREAD_STACK      (1u << 20)     /* stack of a connection thread */
#define HTTP_JSON_MAX_DEPTH    8u             /* nesting of a pre-authentication JSON body */
#define HTTP_LOGIN_MAX_FIELD   1024u          /* bytes of a login field (password: CRYPTO_PASSWORD_MAX) */
#define AUTH_NAME_MAX          64u            /* bytes of a user name */
#define AUTH_PWHASH_CONCURRENCY 2u            /* Argon2id verifications at once (64 MiB each) */
#define AUTH_PWHASH_WAIT       10u            /* seconds a login waits for one before "busy" */
#define AUTH_LIMITER_SLOTS     4096u          /* failure counters kept in memory (accounts + addresses) */
#define AUTH_LOCKOUT_MAX_FAILURES 100u        /* the largest [auth] lockout_failures (each counter keeps that many times) */
#define AUTH_ENDED_PER_LOGIN   16u            /* ended sessions a login deletes, each with its logout record */
#define AUTH_BREAK_GLASS_MINUTES_MAX 1440u    /* the largest [auth] break_glass_minutes (a day) */

/* multipart/related (proto/multipart.c) and DICOMweb (daemon/dicomweb.c) */
#define MP_BOUNDARY_MAX        70u            /* RFC 2046 */
#define MP_MEDIA_MAX           127u           /* a media type or the type parameter */
#define MP_HEADER_LINE_MAX     1024u          /* one part header line */
#define MP_HEADER_VALUE_MAX    255u           /* a part's Content-Type value */
#define MP_HEADERS_MAX         8192u          /* all header bytes of one part */
#define MP_MAX_HEADERS         32u            /* header fields of one part */
#define MP_MAX_PART_SIZE       ((unsigned long long)4 << 30)  /* bytes of one part (STOW-RS instance) */
#define MP_MAX_PARTS           10000u         /* parts in one request */
#define DICOMWEB_JSON_MAX      ((size_t)16 << 20)  /* each item list of a STOW-RS answer; one instance's metadata */
/* WADO-RS (daemon/wado.c, wado_meta.c) */
#define DICOMWEB_MAX_INSTANCES (1u << 18)     /* instances in one study or series answer (~100 bytes each in memory) */
#define DICOMWEB_MAX_FRAMES    1024u          /* frame numbers in one frames request (400 beyond) */
#define DICOMWEB_MAX_DECODED_FRAME (32u << 20) /* a frame sent decompressed (its decoded bytes held while sent): larger ones are 406 */
#define WADO_PREFETCH          (64u * 1024)   /* first bytes of a retrieval read (authenticated) before answering */
#define DICOMWEB_BULK_THRESHOLD 1024u         /* metadata: binary values longer are a BulkDataURI (as pydicom) */
#define DICOMWEB_MAX_TS        64u            /* distinct transfer syntaxes in one answer (Accept ranges looked at) */
#define DICOMWEB_BULK_PATH_MAX 1024u          /* bytes of a bulk data path ("GGGGEEEE.ITEM...", 32 levels) */
/* WADO-RS rendered and thumbnail (dicom/render.c, daemon/wado_render.c) */
#define RENDER_MAX_PIXELS      (4096u * 4096u) /* Rows x Columns of an image rendered (one frame held at a time) */
#define RENDER_MAX_VIEWPORT    8192u          /* vw or vh of the viewport parameter (400 beyond) */
#define RENDER_THUMB_SIZE      128u           /* a thumbnail fits this square unless a viewport is given */
#define RENDER_JPEG_QUALITY    90             /* JPEG quality without the quality parameter */
#define RENDER_MAX_OUTPUT      ((size_t)256 << 20) /* bytes of one encoded image */
#define RENDER_MAX_ANSWER      ((size_t)64 << 20)  /* bytes of one rendered answer, all its images */
#define RENDER_MAX_PARAM       64u            /* bytes of a window, viewport or quality value */
#define RENDER_MAX_PARTS       256u           /* instances of a rendered study or series (400 beyond) */
#define RENDER_CONCURRENCY     2u             /* requests rendering at once (each holds one frame and its images) */
#define RENDER_WAIT            10             /* seconds a request waits for its turn before 503 */
#define RENDER_HEAVY_DECODES   2u             /* JPEG 2000 / JPEG-LS / JPEG Lossless / 12-bit JPEG frames decoding at once, process-wide (OpenJPEG holds every sample as 32 bits: a 4096x4096 RGB frame of a few hundred bytes needs ~400 MB) */
#define RENDER_J2K_MAX_TILES   4096u          /* tiles of a JPEG 2000 frame (OpenJPEG allocates a tile structure for each before decoding) */

/* API tokens (core/token.c) */
#define TOKEN_TTL_DEFAULT      (30 * 86400)   /* seconds a token lasts without --ttl */
#define TOKEN_TTL_MAX          (366 * 86400)  /* longest --ttl: a year (rotate tokens) */
#define TOKEN_TOUCH_EVERY      60             /* seconds between last_used writes of one token */
/* queries: the matching engine (core/query.c) and QIDO-RS (proto/qido.c, daemon/qido.c) */
#define QRY_MAX_KEYS           64u            /* match keys of one query (sequence items' keys included) */
#define QRY_MAX_ELEMS          1024u          /* elements of one C-FIND identifier, return keys included */
#define QRY_MAX_VALUES         256u           /* values of one key (a UID list) */
#define QRY_MAX_VALUE_LEN      4096u          /* bytes of one key's value (a URL is at most HTTP_MAX_URL) */
#define QRY_MAX_INCLUDE        128u           /* return keys asked for besides the required ones */
#define QRY_BATCH              64u            /* index rows fetched per hold of the index lock (a batch stays under malloc's mmap threshold) */
#define QRY_DK_CACHE           8u             /* unwrapped data keys kept during one query (wiped at its end) */
#define QRY_RECORD_MAX         (4u << 20)     /* bytes of one decrypted record */
#define QIDO_MAX_ARGS          128u           /* query parameters of one request */
#define QIDO_MAX_RESULTS       1000u          /* results of one answer (Warning header beyond) */
#define QIDO_MAX_NUMBER        1000000000ll   /* largest limit or offset accepted */
#define QIDO_MAX_IGNORED       8u             /* unsupported parameters named in a Warning */
#define QIDO_JSON_MAX          ((size_t)64 << 20)  /* one QIDO-RS answer */

/* DICOM upper layer (proto/pdu.c, proto/ul.c) and DIMSE (proto/dimse.c) */
#define PDU_MAX_PREASSOC       (1024u * 1024) /* PDU body before an association is established (128 contexts of 64 syntaxes fit) */
#define PDU_MAX_PCTX           128u           /* presentation contexts in one A-ASSOCIATE */
#define PDU_MAX_TS_PER_PCTX    64u            /* transfer syntaxes proposed in one context */
#define PDU_MAX_TS_TOTAL       2048u          /* transfer syntaxes kept of one A-ASSOCIATE-RQ (128 contexts x 16; more are left out) */
#define PDU_MAX_ROLES          128u           /* SCP/SCU role selection sub-items */
#define PDU_MAX_IDENTITY       (16u * 1024)   /* user identity primary field (user name, JWT) */
#define PDU_MAX_IDENTITY_RESP  (16u * 1024)   /* user identity server response */
#define UL_RECV_MAX_DEFAULT    (64u * 1024)   /* maximum PDU length we advertise */
#define UL_RECV_MAX_CAP        (1u << 20)     /* largest we may be configured to advertise */
#define UL_SEND_MAX_CAP        (1u << 20)     /* largest P-DATA-TF we send (peer said 0: unlimited) */
#define UL_PEER_MIN_MAX        512u           /* smallest maximum length of a peer we accept */
#define UL_PEER_DEFAULT_MAX    16384u         /* assumed when a peer sends no maximum length */
#define UL_TX_MAX              (16u << 20)    /* bytes queued to send before the caller drains them */
#define UL_ARTIM_SECONDS       30u            /* ARTIM timer (PS3.8 9.1.5) */
#define DIMSE_MAX_COMMAND      (16u * 1024)   /* bytes of one command set */
#define DIMSE_MAX_STRING       1024u          /* a string element of a command set (ErrorComment: 64) */
#define DIMSE_MAX_IDENTIFIER   (64u * 1024)   /* a C-FIND/C-MOVE/C-GET identifier data set */
#define DIMSE_MAX_GET_INSTANCES 100000u       /* instances one C-GET may name */
/* matches one C-FIND answers ([dicom] max_find_matches): each is kept as
 * 8 bytes between the counting run and the answering one; past it A700H,
 * narrow the query */
#define DIMSE_FIND_MATCHES_DEFAULT 1000000u
#define DIMSE_FIND_MATCHES_MAX     20000000u
/* import --from: pending responses without progress for this long end the
 * operation ([dicom] stall_timeout, seconds) */
#define DIMSE_STALL_MS_DEFAULT     (3600u * 1000u)
#define DIMSE_MAX_META         (64u * 1024)   /* File Meta Information of a stored object, when sent */
#define DIMSE_MAX_FAILED_LIST  65000u         /* bytes of a Failed SOP Instance UID List (UI: 16-bit length) */

#endif
