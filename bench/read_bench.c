/* read_bench.c: micro-benchmarks of the DICOM readers, driven by
 * bench/run.sh. Layer: bench (uses the public library API only).
 *
 *   read_bench headers [-r R] [--stop] [--bulk N] FILE...
 *       Parses every file's data set into a tree with dcm_file_read(),
 *       values above N bytes (default 1024) left in the file, and looks up
 *       a few attributes, as an indexer would. --stop also sets stop_tag to
 *       Pixel Data (7FE0,0010), like pydicom's stop_before_pixels. The whole
 *       list is parsed R times (default 5); prints instances/s.
 *
 *   read_bench stream [-r R] FILE
 *       Reads a Part 10 file through the event reader, reading every value
 *       (bulk values in 1 MiB chunks into one reused buffer) and xor-folding
 *       all value bytes so that no read can be optimised away. Prints MB/s
 *       (10^6 bytes of file per second) and the peak RSS of the process.
 *
 * Output is one line of key=value pairs, for scripts. Each figure is the
 * best of R passes, both in wall-clock time (CLOCK_MONOTONIC) and in CPU
 * time of the process (user + system, CLOCK_PROCESS_CPUTIME_ID), which other
 * load on the machine disturbs less. Timing covers open, parse and close of
 * every file. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "dicomvault/dataset.h"
#include "dicomvault/dict.h"
#include "dicomvault/io.h"
#include "dicomvault/rd.h"

#define CHUNK ((size_t)1 << 20)
#define MAX_REPS 1000u

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct times {
	double *wall, *cpu;   /* one per pass */
	unsigned long n;
};

static bool times_init(struct times *t, unsigned long n)
{
	t->n = n;
	t->wall = calloc(n, sizeof *t->wall);
	t->cpu = calloc(n, sizeof *t->cpu);
	return t->wall != NULL && t->cpu != NULL;
}

static void times_fini(struct times *t)
{
	free(t->wall);
	free(t->cpu);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static long peak_rss_kb(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return ru.ru_maxrss;
}

static uint64_t fold(uint64_t acc, const uint8_t *p, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		acc ^= w;
	}
	for (; i < n; i++)
		acc ^= (uint64_t)p[i] << (8 * (i & 7));
	return acc;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != 0 || v == 0 || v > max)
		return false;
	*out = v;
	return true;
}

static void usage(void)
{
	fputs("usage: read_bench headers [-r R] [--stop] [--bulk N] FILE...\n"
	      "       read_bench stream [-r R] FILE\n", stderr);
}

/* ---- headers ---- */

/* One pass over all files; adds the elements seen to *nelems. */
static enum err headers_pass(char **files, int n, const struct dcm_read_opts *o, uint64_t *nelems,
                             uint64_t *check)
{
	enum err rc = ERR_INTERNAL;
	int i;

	for (i = 0; i < n; i++) {
		struct dcm_errinfo ei;
		struct dcm_file *f = NULL;
		struct src s;
		const char *v;
		size_t len = 0;

		rc = src_file_open(&s, files[i]);
		if (rc != ERR_OK) {
			fprintf(stderr, "read_bench: %s: cannot open: %s\n", files[i], err_str(rc));
			return rc;
		}
		rc = dcm_file_read(&s, o, &f, &ei);
		if (rc != ERR_OK) {
			fprintf(stderr, "read_bench: %s: %s at offset %llu: %s\n", files[i], err_str(rc),
			        (unsigned long long)ei.offset, ei.msg);
			src_close(&s);
			return rc;
		}
		/* what an indexer would look at */
		v = dcm_ds_str(&f->ds, 0x00080018u, &len);   /* SOP Instance UID */
		if (v != NULL && len > 0)
			*check += (uint8_t)v[len - 1];
		v = dcm_ds_str(&f->ds, 0x00100020u, &len);   /* Patient ID */
		if (v != NULL)
			*check += len;
		if (dcm_ds_find(&f->ds, TAG_PIXEL_DATA) != NULL)
			*check += 1;
		*nelems += f->nelems;
		dcm_file_free(f);
		src_close(&s);
	}
	return ERR_OK;
}

static int cmd_headers(int argc, char **argv)
{
	struct dcm_read_opts o = { .bulk_threshold = 1024 };
	unsigned long reps = 5, v;
	struct times t = { 0 };
	double best, med, cpu;
	uint64_t nelems = 0, check = 0;
	int i, rc = 1;

	for (i = 0; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--stop") == 0) {
			o.stop_tag = TAG_PIXEL_DATA;
		} else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc && parse_uint(argv[i + 1], MAX_REPS, &reps)) {
			i++;
		} else if (strcmp(argv[i], "--bulk") == 0 && i + 1 < argc && parse_uint(argv[i + 1], UINT32_MAX, &v)) {
			o.bulk_threshold = (uint32_t)v;
			i++;
		} else {
			usage();
			return 2;
		}
	}
	if (i >= argc) {
		usage();
		return 2;
	}
	if (!times_init(&t, reps))
		goto out;
	/* one untimed pass warms the page cache, the allocator and the dictionary */
	if (headers_pass(argv + i, argc - i, &o, &nelems, &check) != ERR_OK)
		goto out;
	nelems = 0;
	for (unsigned long k = 0; k < reps; k++) {
		double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		if (headers_pass(argv + i, argc - i, &o, &nelems, &check) != ERR_OK)
			goto out;
		t.cpu[k] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
		t.wall[k] = clock_s(CLOCK_MONOTONIC) - w0;
	}
	qsort(t.wall, reps, sizeof *t.wall, cmp_double);
	qsort(t.cpu, reps, sizeof *t.cpu, cmp_double);
	best = t.wall[0];
	med = t.wall[reps / 2];
	cpu = t.cpu[0];
	printf("headers mode=%s bulk=%u files=%d reps=%lu best_s=%.6f median_s=%.6f cpu_best_s=%.6f "
	       "inst_per_s_best=%.1f inst_per_s_median=%.1f inst_per_s_cpu=%.1f elems_per_file=%.1f check=%llu "
	       "maxrss_kb=%ld\n",
	       o.stop_tag ? "stop" : "bulk", o.bulk_threshold, argc - i, reps, best, med, cpu, (argc - i) / best,
	       (argc - i) / med, (argc - i) / cpu, (double)nelems / (double)reps / (argc - i),
	       (unsigned long long)check, peak_rss_kb());
	rc = 0;
out:
	times_fini(&t);
	return rc;
}

/* ---- stream ---- */

struct stream_stats {
	uint64_t bytes;       /* value bytes read */
	uint64_t events;
	uint64_t xor;
	uint64_t file_size;
};

static enum err stream_once(const char *path, uint8_t *buf, struct stream_stats *st)
{
	struct dcm_errinfo ei = { 0 };
	struct dcm_reader r;
	struct dcm_ev ev;
	struct src s;
	uint8_t head[132];
	char ts[65] = "";
	bool have_src = false, have_r = false, in_meta = true;
	enum err rc;

	rc = src_file_open(&s, path);
	if (rc != ERR_OK) {
		fprintf(stderr, "read_bench: %s: cannot open: %s\n", path, err_str(rc));
		goto out;
	}
	have_src = true;
	st->file_size = (uint64_t)s.size;
	rc = src_read_full(&s, head, sizeof head);
	if (rc != ERR_OK || memcmp(head + 128, "DICM", 4) != 0) {
		fprintf(stderr, "read_bench: %s: not a Part 10 file\n", path);
		rc = ERR_PARSE;
		goto out;
	}
	rc = dcm_reader_init(&r, &s, sizeof head, true, false, &ei);
	if (rc != ERR_OK)
		goto out;
	have_r = true;
	for (;;) {
		if (in_meta && r.depth == 0) {
			const uint8_t *p;
			if (dcm_reader_peek(&r, 2, &p) != ERR_OK || load_u16le(p) != 0x0002) {
				const struct dcm_ts *t = dict_ts(ts, strlen(ts));
				in_meta = false;
				if (t == NULL)
					t = DCM_TS_EXPLICIT_LE;
				if (t->deflated) {
					fprintf(stderr, "read_bench: %s: deflated transfer syntax not supported here\n", path);
					rc = ERR_UNSUPPORTED;
					goto out;
				}
				r.explicit_vr = t->explicit_vr;
				r.big_endian = t->big_endian;
			}
		}
		rc = dcm_reader_next(&r, &ev);
		if (rc != ERR_OK)
			goto fail;
		st->events++;
		if (ev.kind == DCM_EV_EOF)
			break;
		if (ev.kind != DCM_EV_ELEM && ev.kind != DCM_EV_FRAG)
			continue;
		for (uint64_t left = ev.len; left > 0;) {
			size_t n = left > CHUNK ? CHUNK : (size_t)left;
			rc = dcm_reader_value(&r, buf, n);
			if (rc != ERR_OK)
				goto fail;
			st->xor = fold(st->xor, buf, n);
			st->bytes += n;
			left -= n;
		}
		if (in_meta && ev.tag == TAG_TS_UID && ev.len < sizeof ts) {
			size_t n = ev.len;
			memcpy(ts, buf, n);
			while (n > 0 && (ts[n - 1] == 0 || ts[n - 1] == ' '))
				n--;
			ts[n] = 0;
		}
	}
	rc = ERR_OK;
	goto out;
fail:
	fprintf(stderr, "read_bench: %s: %s at offset %llu: %s\n", path, err_str(rc), (unsigned long long)ei.offset,
	        ei.msg);
out:
	if (have_r)
		dcm_reader_fini(&r);
	if (have_src)
		src_close(&s);
	return rc;
}

static int cmd_stream(int argc, char **argv)
{
	struct stream_stats st = { 0 };
	unsigned long reps = 3;
	uint8_t *buf = NULL;
	struct times t = { 0 };
	double best, med, cpu;
	int i, rc = 1;

	for (i = 0; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-r") == 0 && i + 1 < argc && parse_uint(argv[i + 1], MAX_REPS, &reps)) {
			i++;
		} else {
			usage();
			return 2;
		}
	}
	if (i + 1 != argc) {
		usage();
		return 2;
	}
	buf = malloc(CHUNK);
	if (buf == NULL || !times_init(&t, reps))
		goto out;
	for (unsigned long k = 0; k < reps; k++) {
		double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		memset(&st, 0, sizeof st);
		if (stream_once(argv[i], buf, &st) != ERR_OK)
			goto out;
		t.cpu[k] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
		t.wall[k] = clock_s(CLOCK_MONOTONIC) - w0;
	}
	qsort(t.wall, reps, sizeof *t.wall, cmp_double);
	qsort(t.cpu, reps, sizeof *t.cpu, cmp_double);
	best = t.wall[0];
	med = t.wall[reps / 2];
	cpu = t.cpu[0];
	printf("stream file_bytes=%llu value_bytes=%llu events=%llu reps=%lu best_s=%.6f median_s=%.6f "
	       "cpu_best_s=%.6f mb_per_s_best=%.1f mb_per_s_median=%.1f mb_per_s_cpu=%.1f xor=%016llx "
	       "maxrss_kb=%ld\n",
	       (unsigned long long)st.file_size, (unsigned long long)st.bytes, (unsigned long long)st.events, reps,
	       best, med, cpu, (double)st.file_size / best / 1e6, (double)st.file_size / med / 1e6,
	       (double)st.file_size / cpu / 1e6, (unsigned long long)st.xor, peak_rss_kb());
	rc = 0;
out:
	times_fini(&t);
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "headers") == 0)
		return cmd_headers(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "stream") == 0)
		return cmd_stream(argc - 2, argv + 2);
	usage();
	return 2;
}
