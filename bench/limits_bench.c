/* limits_bench.c: the machine's own limits for the ingest path, with the
 * libraries the product uses (bench/run.sh section 5, docs/BENCH.md):
 *   sha256 [MB]      SHA-256 (libsodium crypto_hash_sha256, as crypto/hash.c;
 *                    and GnuTLS gnutls_hash for comparison), one thread and
 *                    two threads
 *   gcm [MB]         AES-256-GCM (libsodium, precomputed state, 64 KiB
 *                    chunks, as crypto/aead.c; and GnuTLS gnutls_aead_cipher,
 *                    as TLS records are), one and two threads
 *   fsync DIR FILE...  writes the bytes of FILE... into DIR: (a) all into
 *                    one file, one fsync at the end; (b) one file per input,
 *                    each fsync'd at once (what a per-instance durable store
 *                    costs); (c) one file per input, all written, then each
 *                    fsync'd, then the directory (a group commit per request)
 * Prints one line of key=value per measure; MB = 10^6 bytes. */
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64u * 1024)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *buf;
static size_t buf_len;

enum algo { A_SHA_SODIUM, A_SHA_GNUTLS, A_GCM, A_GCM_GNUTLS };

struct job {
	enum algo a;
	double secs;
	unsigned char out[32];
};

static void *run_job(void *p)
{
	struct job *j = p;
	double t0 = now();
	size_t off;

	if (j->a == A_SHA_SODIUM) {
		crypto_hash_sha256_state st;
		crypto_hash_sha256_init(&st);
		for (off = 0; off < buf_len; off += CHUNK)
			crypto_hash_sha256_update(&st, buf + off, buf_len - off < CHUNK ? buf_len - off : CHUNK);
		crypto_hash_sha256_final(&st, j->out);
	} else if (j->a == A_SHA_GNUTLS) {
		gnutls_hash_hd_t h;
		if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
			abort();
		for (off = 0; off < buf_len; off += CHUNK)
			gnutls_hash(h, buf + off, buf_len - off < CHUNK ? buf_len - off : CHUNK);
		gnutls_hash_deinit(h, j->out);
	} else if (j->a == A_GCM_GNUTLS) {
		static unsigned char key[32];
		gnutls_datum_t kd = { key, sizeof key };
		gnutls_aead_cipher_hd_t h;
		unsigned char *ct = malloc(CHUNK + 16), nonce[12] = { 0 };
		size_t ctlen;
		if (ct == NULL || gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_GCM, &kd) < 0)
			abort();
		for (off = 0; off < buf_len; off += CHUNK) {
			size_t n = buf_len - off < CHUNK ? buf_len - off : CHUNK;
			memcpy(nonce, &off, sizeof off);
			ctlen = CHUNK + 16;
			if (gnutls_aead_cipher_encrypt(h, nonce, sizeof nonce, "ad", 2, 16, buf + off, n, ct, &ctlen) < 0)
				abort();
		}
		j->out[0] = ct[0];
		gnutls_aead_cipher_deinit(h);
		free(ct);
	} else {
		static unsigned char key[32];
		crypto_aead_aes256gcm_state *st = sodium_malloc(sizeof *st);
		unsigned char *ct = malloc(CHUNK + 16), nonce[12] = { 0 };
		if (st == NULL || ct == NULL)
			abort();
		crypto_aead_aes256gcm_beforenm(st, key);
		for (off = 0; off < buf_len; off += CHUNK) {
			size_t n = buf_len - off < CHUNK ? buf_len - off : CHUNK;
			memcpy(nonce, &off, sizeof off);
			crypto_aead_aes256gcm_encrypt_detached_afternm(ct, ct + n, NULL, buf + off, n,
			                                               (const unsigned char *)"ad", 2, NULL, nonce, st);
		}
		j->out[0] = ct[0];
		free(ct);
		sodium_free(st);
	}
	j->secs = now() - t0;
	return NULL;
}

/* best of reps, with 1 and 2 threads each hashing/encrypting the whole buffer */
static void cpu_measure(const char *name, enum algo a, int reps)
{
	double best1 = 1e9, best2 = 1e9;
	int r;

	for (r = 0; r < reps; r++) {
		struct job j = { .a = a };
		run_job(&j);
		if (j.secs < best1)
			best1 = j.secs;
	}
	for (r = 0; r < reps; r++) {
		struct job j[2] = { { .a = a }, { .a = a } };
		pthread_t t[2];
		double t0 = now(), el;
		pthread_create(&t[0], NULL, run_job, &j[0]);
		pthread_create(&t[1], NULL, run_job, &j[1]);
		pthread_join(t[0], NULL);
		pthread_join(t[1], NULL);
		el = now() - t0;
		if (el < best2)
			best2 = el;
	}
	printf("%s mb_per_s_1thread=%.0f mb_per_s_2threads=%.0f mb=%.1f\n", name, (double)buf_len / best1 / 1e6,
	       2.0 * (double)buf_len / best2 / 1e6, (double)buf_len / 1e6);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		return NULL;
	p = malloc((size_t)n + 1);
	if (p == NULL || fread(p, 1, (size_t)n, f) != (size_t)n)
		return NULL;
	fclose(f);
	*len = (size_t)n;
	return p;
}

static int fsync_bench(const char *dir, int nfiles, char **files, int reps)
{
	unsigned char **data = calloc((size_t)nfiles, sizeof *data);
	size_t *lens = calloc((size_t)nfiles, sizeof *lens), total = 0;
	char path[4096];
	double best_one = 1e9, best_each = 1e9, best_group = 1e9;
	int i, r, fd;

	for (i = 0; i < nfiles; i++) {
		if ((data[i] = slurp(files[i], &lens[i])) == NULL) {
			fprintf(stderr, "limits_bench: cannot read %s\n", files[i]);
			return 1;
		}
		total += lens[i];
	}
	for (r = 0; r < reps; r++) {
		double t0;
		snprintf(path, sizeof path, "%s/one.bin", dir);
		t0 = now();
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			return 1;
		for (i = 0; i < nfiles; i++)
			if (write_all(fd, data[i], lens[i]) != 0)
				return 1;
		if (fsync(fd) != 0 || close(fd) != 0)
			return 1;
		t0 = now() - t0;
		if (t0 < best_one)
			best_one = t0;
		unlink(path);

		t0 = now();
		for (i = 0; i < nfiles; i++) {
			snprintf(path, sizeof path, "%s/f%05d.bin", dir, i);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd < 0 || write_all(fd, data[i], lens[i]) != 0 || fsync(fd) != 0 || close(fd) != 0)
				return 1;
		}
		/* the directory entries too, once, as a store would per file */
		fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		t0 = now() - t0;
		if (t0 < best_each)
			best_each = t0;
		for (i = 0; i < nfiles; i++) {
			snprintf(path, sizeof path, "%s/f%05d.bin", dir, i);
			unlink(path);
		}

		/* group commit: every file written first, then each fsync'd, then
		 * the directory once (what one fsync pass per request would cost) */
		t0 = now();
		{
			int *fds = calloc((size_t)nfiles, sizeof *fds);
			for (i = 0; i < nfiles; i++) {
				snprintf(path, sizeof path, "%s/g%05d.bin", dir, i);
				fds[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
				if (fds[i] < 0 || write_all(fds[i], data[i], lens[i]) != 0)
					return 1;
			}
			for (i = 0; i < nfiles; i++)
				if (fsync(fds[i]) != 0 || close(fds[i]) != 0)
					return 1;
			free(fds);
		}
		fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		t0 = now() - t0;
		if (t0 < best_group)
			best_group = t0;
		for (i = 0; i < nfiles; i++) {
			snprintf(path, sizeof path, "%s/g%05d.bin", dir, i);
			unlink(path);
		}
	}
	printf("fsync mb=%.1f files=%d one_file_mb_per_s=%.0f one_file_ms=%.0f per_file_fsync_mb_per_s=%.0f "
	       "per_file_fsync_files_per_s=%.0f per_file_fsync_ms=%.0f group_fsync_files_per_s=%.0f group_fsync_ms=%.0f\n",
	       (double)total / 1e6, nfiles, (double)total / best_one / 1e6, best_one * 1e3,
	       (double)total / best_each / 1e6, nfiles / best_each, best_each * 1e3, nfiles / best_group,
	       best_group * 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	int reps = 3;

	if (argc < 2 || sodium_init() < 0 || gnutls_global_init() < 0) {
		fprintf(stderr, "usage: limits_bench sha256|gcm [MB] | fsync DIR FILE...\n");
		return 2;
	}
	if (strcmp(argv[1], "fsync") == 0) {
		if (argc < 4)
			return 2;
		return fsync_bench(argv[2], argc - 3, argv + 3, reps);
	}
	buf_len = (size_t)(argc > 2 ? atof(argv[2]) : 158.0) * 1000000u;
	buf = malloc(buf_len);
	if (buf == NULL)
		return 1;
	randombytes_buf(buf, buf_len);
	if (strcmp(argv[1], "sha256") == 0) {
		cpu_measure("sha256_libsodium", A_SHA_SODIUM, reps);
		cpu_measure("sha256_gnutls", A_SHA_GNUTLS, reps);
	} else if (strcmp(argv[1], "gcm") == 0) {
		if (!crypto_aead_aes256gcm_is_available()) {
			printf("aes256gcm unavailable=1\n");
			return 0;
		}
		cpu_measure("aes256gcm_libsodium", A_GCM, reps);
		cpu_measure("aes256gcm_gnutls", A_GCM_GNUTLS, reps);
	} else {
		return 2;
	}
	return 0;
}
