/* serve.c: the server process of `dicomvault serve`. Disables core dumps
 * and ptrace (it holds the master key), opens the vault (vault_open
 * refuses loose permissions and weak keys), the audit trail (where it
 * records the configuration when it changed) and the login service,
 * starts the HTTPS listener and waits for SIGINT or SIGTERM with those
 * signals blocked in every thread, then stops in order. For now one
 * process: the privilege-separated roles of STYLE.md (netd, keyd, stored,
 * auditd) come later (docs/internals/http.md). Layer: daemon. */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dicomvault/audit.h"
#include "dicomvault/auth.h"
#include "dicomvault/dimse_srv.h"
#include "dicomvault/http.h"
#include "dicomvault/ini.h"
#include "dicomvault/io.h"
#include "dicomvault/limits.h"
#include "dicomvault/log.h"
#include "dicomvault/serve.h"
#include "dicomvault/vault.h"
#include "dicomvault/vr.h"
#include "dicomvault/x509.h"

#define DEFAULT_LISTEN "127.0.0.1:8443"
#define CERT_MAX (1u << 20)

static void harden(void)
{
	if (proc_harden() != ERR_OK)
		log_warn("cannot disable core dumps or make the process undumpable");
}

/* serve --json: where it listens, as one JSON line. */
static void print_json(const char *url, const struct dimse_srv *dsrv, const char *dir)
{
	json_t *j = json_pack("{s:s,s:o,s:s}", "https", url, "dicom_port",
	                      dsrv != NULL ? json_integer(dimse_srv_port(dsrv)) : json_null(), "vault", dir);
	char *t = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	if (t != NULL)
		printf("%s\n", t);
	else
		printf("{}\n");   /* out of memory: the line stays JSON */
	free(t);
	json_decref(j);
}

int serve_run(const struct serve_opts *o)
{
	struct vault_open_opts vo = { .passphrase_file = o->passphrase_file, .no_check = false, .refuse_weak = true };
	char why[512], cert_path[VAULT_PATH_MAX + 64], key_path[VAULT_PATH_MAX + 64];
	pthread_mutex_t ix_lock = PTHREAD_MUTEX_INITIALIZER;
	struct vault *v = NULL;
	struct audit *au = NULL;
	struct auth *a = NULL;
	struct http_server *srv = NULL;
	struct dimse_srv *dsrv = NULL;
	struct secret *key = NULL;
	struct http_opts ho;
	uint8_t *cert = NULL;
	size_t cert_len = 0;
	const char *listen, *mb;
	sigset_t set;
	int sig = 0, ret = 1;
	enum err rc;

	harden();
	log_set_level(LOG_INFO);
	rc = vault_open(o->vault_dir, &vo, &v, why, sizeof why);
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault serve: %s\n", why);
		goto out;
	}
	if (vault_conf_path(v, "http", "cert", "keys/tls.crt", cert_path, sizeof cert_path) != 0 ||
	    vault_conf_path(v, "http", "key", "keys/tls.key", key_path, sizeof key_path) != 0) {
		fprintf(stderr, "dicomvault serve: [http] cert or key path too long\n");
		goto out;
	}
	if (file_read_all(cert_path, CERT_MAX, &cert, &cert_len) != ERR_OK) {
		fprintf(stderr, "dicomvault serve: cannot read the TLS certificate %s\n", cert_path);
		goto out;
	}
	if (secret_read_file(key_path, CRYPTO_SECRET_FILE_MAX, 0, &key) != ERR_OK) {
		fprintf(stderr, "dicomvault serve: cannot read the TLS key %s (it must be mode 0600)\n", key_path);
		goto out;
	}
	{
		/* the one pair of every listener: refused if weak or not a
		 * pair; an expired certificate is served with a warning (the
		 * archive stays up while it is renewed; peers pinned to its
		 * fingerprint still connect) */
		time_t exp = 0, now = time(NULL);
		if (x509_check_pair(cert, cert_len, secret_view(key), secret_len(key), &exp, why, sizeof why) != ERR_OK) {
			fprintf(stderr, "dicomvault serve: %s and %s: %s\n", cert_path, key_path, why);
			goto out;
		}
		if (exp != (time_t)-1 && exp <= now)
			log_warn("the TLS certificate %s has expired: clients that check it will refuse to connect", cert_path);
		else if (exp != (time_t)-1 && exp - now < 30 * 86400)
			log_warn("the TLS certificate %s expires in %lld days", cert_path, (long long)((exp - now) / 86400));
	}
	if (!aead_gcm_hw())
		log_warn("this CPU has no AES instructions: objects are sealed with AES-256-GCM in software, "
		         "slower and not constant-time (docs/internals/crypto.md)");
	if (vault_audit_open(v, &au) != ERR_OK) {
		fprintf(stderr, "dicomvault serve: cannot open the audit trail %s/%s (run 'dicomvault audit verify')\n",
		        v->dir, AUDIT_LOG_PATH);
		goto out;
	}
	/* before anything listens: the configuration it will run with is in
	 * the trail, or serve does not start */
	if (vault_conf_audit(v, au, &(struct audit_actor){ .user = o->operator_name, .role = "operator",
	                                                   .addr = "local" }) != ERR_OK) {
		fprintf(stderr, "dicomvault serve: cannot record the configuration in the audit trail %s/%s\n", v->dir,
		        AUDIT_LOG_PATH);
		goto out;
	}
	{
		/* [audit] read_sync_ms: records of reads are fsynced within this
		 * many ms (0: each before its answer); changes always at once */
		const char *ms = ini_get(v->conf, "audit", NULL, "read_sync_ms");
		char *end = NULL;
		long n = ms ? strtol(ms, &end, 10) : AUDIT_READ_SYNC_MS_DEFAULT;
		if (ms != NULL && (end == ms || *end != 0 || n < 0 || n > (long)AUDIT_LAZY_MAX_MS)) {
			fprintf(stderr, "dicomvault serve: [audit] read_sync_ms: a number of milliseconds, 0 to %u\n",
			        AUDIT_LAZY_MAX_MS);
			goto out;
		}
		if (n > 0 && audit_lazy_reads(au, (unsigned)n) != ERR_OK) {
			fprintf(stderr, "dicomvault serve: cannot start the audit syncer\n");
			goto out;
		}
	}
	v->ix_lock = &ix_lock;   /* core takes it around its own index work */
	if (auth_new(&v->auth, v->ix, &ix_lock, v->mk, v->index_key, au, &a) != ERR_OK) {
		fprintf(stderr, "dicomvault serve: cannot start the login service\n");
		goto out;
	}

	/* the threads the listener starts inherit this mask: only the
	 * main thread takes SIGINT and SIGTERM (in sigwait) */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		fprintf(stderr, "dicomvault serve: cannot block signals\n");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);

	listen = o->listen ? o->listen : ini_get(v->conf, "http", NULL, "listen");
	if (listen == NULL || listen[0] == 0)
		listen = DEFAULT_LISTEN;
	memset(&ho, 0, sizeof ho);
	ho.listen = listen;
	ho.cert_pem = cert;
	ho.cert_len = cert_len;
	ho.key_pem = key;
	ho.auth = a;
	ho.vault = v;
	ho.ix_lock = &ix_lock;
	ho.audit = au;
	ho.public_url = ini_get(v->conf, "http", NULL, "public_url");
	if (ho.public_url != NULL && !http_public_url_ok(ho.public_url)) {
		fprintf(stderr, "dicomvault serve: [http] public_url must be an http:// or https:// URL of at most %u "
		        "bytes, a host and a path at most (e.g. https://pacs.example.org/vault)\n", HTTP_PUBLIC_URL_MAX);
		goto out;
	}
	ho.trusted_proxies = ini_get(v->conf, "http", NULL, "trusted_proxies");
	if (ho.trusted_proxies != NULL && ho.trusted_proxies[0] != 0 && !http_proxies_ok(ho.trusted_proxies)) {
		fprintf(stderr, "dicomvault serve: [http] trusted_proxies must be at most %u IP addresses separated by "
		        "commas (e.g. 127.0.0.1, ::1)\n", HTTP_PROXIES_MAX);
		goto out;
	}
	mb = ini_get(v->conf, "http", NULL, "max_upload_mb");
	if (mb != NULL) {
		uint64_t n = 0;
		if (!vr_uint_parse(mb, strlen(mb), HTTP_MAX_UPLOAD_MB, &n) || n == 0) {
			fprintf(stderr, "dicomvault serve: [http] max_upload_mb must be an integer from 1 to %llu\n",
			        (unsigned long long)HTTP_MAX_UPLOAD_MB);
			goto out;
		}
		ho.max_upload = n << 20;
	}
	rc = http_server_start(&ho, &srv, why, sizeof why);
	if (rc == ERR_OK) {
		/* DICOM-TLS beside HTTPS, always (SPEC section 2). Without a
		 * peer nobody could associate, so an I/O failure to start it
		 * (its address taken, the [auth] jwt_key only DIMSE reads
		 * missing, no thread) is a warning naming it; configuration
		 * errors (ERR_PARSE) stay fatal */
		char desc[160];
		bool needed = o->dicom_listen != NULL || dimse_srv_needed(v->conf);
		rc = dimse_srv_start_conf(v, o->dicom_listen, cert, cert_len, key, au, a, &dsrv, desc, sizeof desc, why,
		                          sizeof why);
		if (rc == ERR_OK) {
			if (!o->json)
				printf("dicomvault: %s\n", desc);
			log_info("%s", desc);
		} else if (rc == ERR_IO && !needed) {
			log_warn("DICOM-TLS not started: %s; no [peer] is configured, so HTTPS is served alone "
			         "(with a [peer] section or --dicom this stops the server)",
			         why);
			rc = ERR_OK;
		}
	}
	secret_free(key);   /* the servers keep their own copy */
	key = NULL;
	if (rc != ERR_OK) {
		fprintf(stderr, "dicomvault serve: %s\n", why);
		goto out;
	}
	if (o->json)
		print_json(http_server_url(srv), dsrv, v->dir);
	else
		printf("dicomvault: serving %s\n", http_server_url(srv));
	fflush(stdout);
	log_info("serving %s (vault %s)", http_server_url(srv), v->dir);

	while (sigwait(&set, &sig) != 0)
		;
	log_info("stopping on signal %d", sig);
	ret = 0;
out:
	dimse_srv_stop(dsrv);
	http_server_stop(srv);
	auth_free(a);
	audit_close(au);
	secret_free(key);
	free(cert);
	vault_close(v);
	pthread_mutex_destroy(&ix_lock);
	return ret;
}
