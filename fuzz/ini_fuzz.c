/* ini_fuzz.c: libFuzzer target for the dicomvault.conf parser, for the
 * check of its sections and keys against what this version reads
 * (vault_conf_check), and for the readers of its values that take nothing
 * but the parsed file (since session 16): [auth] (auth_conf_load) and
 * [dicom] (dimse_srv_opts_conf). abort()s when a parsed entry is not found
 * again, when a check or reader refuses without saying why (or with a
 * reason that names no line, for the check), when the check passes a
 * section it does not know or a [storage] master_key that does not
 * describe the vault, or when what a reader accepts lies outside the
 * ranges its header promises. Layer: fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/auth.h"
#include "dicomvault/dimse_srv.h"
#include "dicomvault/ini.h"
#include "dicomvault/limits.h"
#include "dicomvault/vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The sections this version knows (vault.c's list): the check must refuse
 * any other. */
static bool known_section(const struct ini_entry *s)
{
	static const char *const plain[] = { "http", "dicom", "storage", "index", "audit", "auth", "deid" };
	size_t i;

	if (s->sub != NULL)
		return strcmp(s->section, "peer") == 0 || strcmp(s->section, "collection") == 0 ||
		       (strcmp(s->section, "deid") == 0 && strncmp(s->sub, "mask ", 5) == 0);
	for (i = 0; i < sizeof plain / sizeof plain[0]; i++)
		if (strcmp(s->section, plain[i]) == 0)
			return true;
	return false;
}

static void check(const struct ini *ini)
{
	char why[256] = "";
	size_t i;

	if (vault_conf_check("/nonexistent-vault", ini, why, sizeof why) != ERR_OK) {
		if (strstr(why, "dicomvault.conf line ") == NULL)
			abort();
		return;
	}
	for (i = 0; i < ini->nsections; i++)
		if (!known_section(&ini->sections[i]))
			abort();
	for (i = 0; i < ini->n; i++)
		if (ini->e[i].sub == NULL && strcmp(ini->e[i].section, "storage") == 0 &&
		    strcmp(ini->e[i].key, "master_key") == 0 && strcmp(ini->e[i].value, "passphrase:keys/master.pass") != 0)
			abort();   /* no keys/master.key there: only the passphrase is right */
}

static void values(const struct ini *ini)
{
	struct auth_conf ac;
	struct dimse_srv_opts o;
	char why[256] = "";

	if (auth_conf_load(ini, &ac, why, sizeof why) == ERR_OK) {
		if (ac.idle_timeout < 1 || ac.idle_timeout > 86400 || ac.session_lifetime < 1 ||
		    ac.session_lifetime > 30 * 86400 || ac.lockout_failures < 1 ||
		    ac.lockout_failures > AUTH_LOCKOUT_MAX_FAILURES || ac.lockout_window < 1 || ac.lockout_window > 86400 ||
		    ac.break_glass_minutes < 1 || ac.break_glass_minutes > AUTH_BREAK_GLASS_MINUTES_MAX)
			abort();
	} else if (why[0] == 0) {
		abort();
	}
	why[0] = 0;
	if (dimse_srv_opts_conf(ini, &o, why, sizeof why) == ERR_OK) {
		if (o.listen == NULL || o.ae == NULL || o.artim_ms > 86400u * 1000 || o.idle_ms > 86400u * 1000 ||
		    (o.artim_ms != 0 && o.artim_ms < 1000) || (o.idle_ms != 0 && o.idle_ms < 1000) || o.max_assoc > 1000 ||
		    (o.recv_max != 0 && (o.recv_max < UL_PEER_MIN_MAX || o.recv_max > UL_RECV_MAX_CAP)))
			abort();
	} else if (why[0] == 0) {
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ini *ini = NULL;
	struct ini_error e;
	size_t i;

	if (ini_parse(data, size, &ini, &e) != ERR_OK)
		return 0;
	for (i = 0; i < ini->n; i++)
		if (ini_get(ini, ini->e[i].section, ini->e[i].sub, ini->e[i].key) == NULL)
			abort();  /* every parsed entry must be found again */
	check(ini);
	values(ini);
	ini_free(ini);
	return 0;
}
