/* access_fuzz.c: libFuzzer target for the small parsers of access control:
 * grant scopes (access_scope_parse), times of grants and accounts
 * (users_parse_time), role and action names, the [collection] rules of
 * dicomvault.conf (access_collections_load over the INI parser), and API
 * tokens' scopes (token_scope_parse, token_scope_allows; since session
 * 16). A scope that parses must format back to a string that parses to
 * the same grant; a token scope's canonical form must parse to itself and
 * allow exactly the actions it lists;
 * a parsed time must lie in the range the parser promises; a failure must
 * say why. Layer: tests (fuzz). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/access.h"
#include "dicomvault/index.h"
#include "dicomvault/ini.h"
#include "dicomvault/token.h"
#include "dicomvault/users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "access_fuzz: %s: %s\n", what, detail);
	abort();
}

/* An API token's scope (token_scope_parse, `token create --scope`): the
 * canonical form parses to itself, and token_scope_allows agrees with it:
 * an action is allowed exactly when listed, in the scope's collection
 * only when it names one. */
static void token_scope(const char *s)
{
	static const char *const names[] = { "store", "query", "retrieve" };
	static const enum access_action acts[] = { ACCESS_ACT_STORE, ACCESS_ACT_QUERY, ACCESS_ACT_RETRIEVE };
	char out[IDX_SCOPE_MAX + 1], again[IDX_SCOPE_MAX + 1], why[256] = "";
	const char *coll = NULL, *coll2 = NULL;
	size_t i;

	if (token_scope_parse(s, out, sizeof out, &coll, why, sizeof why) != ERR_OK) {
		if (why[0] == 0)
			die("a token scope refused without a reason", s);
		return;
	}
	if (token_scope_parse(out, again, sizeof again, &coll2, why, sizeof why) != ERR_OK || strcmp(out, again) != 0 ||
	    (coll == NULL) != (coll2 == NULL) || (coll != NULL && strcmp(coll, coll2) != 0))
		die("a canonical token scope does not parse to itself", out);
	/* the actions: what comes before ",collection=" */
	memcpy(again, out, sizeof again);
	if (coll != NULL)
		again[coll - out - (sizeof ",collection=" - 1)] = 0;
	for (i = 0; i < 3; i++) {
		bool listed = strstr(again, names[i]) != NULL;
		if (token_scope_allows(out, acts[i], coll != NULL ? coll : "default") != listed ||
		    (coll != NULL && token_scope_allows(out, acts[i], "another.collection!")))
			die("token_scope_allows disagrees with the scope", out);
	}
	if (token_scope_allows(out, ACCESS_ACT_SHARE, coll))
		die("a token scope allows sharing", out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[512], why[256], back[256];
	struct access_grant g, g2;
	struct access_collections *c = NULL;
	struct ini_error ie;
	struct ini *ini = NULL;
	enum access_role role;
	enum access_action act;
	int64_t t = 0;
	size_t n = size < sizeof s - 1 ? size : sizeof s - 1;

	memcpy(s, data, n);
	s[n] = 0;
	memset(&g, 0, sizeof g);
	why[0] = 0;
	if (access_scope_parse(s, &g, why, sizeof why) == ERR_OK) {
		access_scope_format(&g, back, sizeof back);
		memset(&g2, 0, sizeof g2);
		if (access_scope_parse(back, &g2, why, sizeof why) != ERR_OK || g2.scope != g.scope ||
		    strcmp(g2.target, g.target) != 0 || memcmp(g2.patient, g.patient, sizeof g.patient) != 0)
			die("a formatted scope does not parse back the same", back);
	} else if (why[0] == 0) {
		die("a scope refused without a reason", s);
	}
	token_scope(s);
	/* dates run from 1970 to 9999 (an offset may move them by a day), "+N"
	 * at most 100 years from now, "@N" at most 10^11 */
	if (users_parse_time(s, 1700000000, &t) == ERR_OK && (t < -86400 || t > 253402300799LL + 86400))
		die("a time out of range", s);
	(void)access_role_parse(s, n, &role);
	(void)access_action_parse(s, n, &act);
	if (ini_parse(data, size, &ini, &ie) == ERR_OK) {
		why[0] = 0;
		if (access_collections_load(ini, &c, why, sizeof why) == ERR_OK) {
			(void)access_collection_known(c, "default");
			(void)access_collection_for(c, NULL, "AE", "default");
		} else if (why[0] == 0) {
			die("collections refused without a reason", "");
		}
		access_collections_free(c);
		ini_free(ini);
	}
	return 0;
}
