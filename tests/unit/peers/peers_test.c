/* peers_test.c: the [peer "AE"] sections of dicomvault.conf
 * (proto/peers.c). Layer: tests. */
#include "test.h"
#include "dicomvault/ini.h"
#include "dicomvault/peers.h"

#define FP "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99"

static enum err load(const char *text, struct peers **out, char *why, size_t whylen)
{
	struct ini *ini = NULL;
	struct ini_error ie;
	enum err rc;

	*out = NULL;
	if (ini_parse((const uint8_t *)text, strlen(text), &ini, &ie) != ERR_OK)
		return ERR_INTERNAL;
	rc = peers_load(ini, out, why, whylen);
	ini_free(ini);
	return rc;
}

TEST(full_peer)
{
	struct peers *p = NULL;
	const struct peer *pe;
	char why[256] = "";
	char fp[96];

	CHECK_EQ_INT(load("[dicom]\nae_title = X\n[peer \"MODALITY1\"]\nfingerprint = " FP "\nhost = 127.0.0.1\n"
	                  "port = 11112\ncollection = ct-dept\nrights = echo, store,find\n"
	                  "[peer \"WS\"]\nca = keys/peer-ca.pem\n",
	                  &p, why, sizeof why),
	             ERR_OK);
	if (p == NULL)
		return;
	CHECK_EQ_INT(p->n, 2);
	pe = peers_find(p, "MODALITY1");
	CHECK(pe != NULL);
	if (pe != NULL) {
		CHECK(pe->has_fp);
		CHECK_EQ_INT(pe->fp[0], 0xAA);
		CHECK_EQ_INT(pe->fp[31], 0x99);
		CHECK_EQ_STR(pe->host, "127.0.0.1");
		CHECK_EQ_INT(pe->port, 11112);
		CHECK_EQ_STR(pe->collection, "ct-dept");
		CHECK_EQ_INT(pe->rights, PEER_RIGHT_ECHO | PEER_RIGHT_STORE | PEER_RIGHT_FIND);
		CHECK(!pe->require_user);
		peers_fingerprint_format(pe->fp, fp);
		CHECK_EQ_STR(fp, "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99");
	}
	pe = peers_find(p, "WS");
	CHECK(pe != NULL);
	if (pe != NULL) {
		CHECK(!pe->has_fp);
		CHECK_EQ_STR(pe->ca, "keys/peer-ca.pem");
		CHECK_EQ_STR(pe->collection, "default");
		CHECK_EQ_INT(pe->rights, 0);
		CHECK_EQ_INT(pe->port, 0);
	}
	CHECK(peers_find(p, "ws") == NULL);
	CHECK(peers_find(p, "NOBODY") == NULL);
	peers_free(p);
}

TEST(no_peers)
{
	struct peers *p = NULL;
	char why[256];

	CHECK_EQ_INT(load("[http]\nlisten = 127.0.0.1:1\n", &p, why, sizeof why), ERR_OK);
	CHECK(p != NULL && p->n == 0);
	peers_free(p);
	peers_free(NULL);
}

static void refused(const char *text, const char *expect_in_why)
{
	struct peers *p = NULL;
	char why[256] = "";

	CHECK_EQ_INT(load(text, &p, why, sizeof why), ERR_PARSE);
	CHECK(p == NULL);
	if (strstr(why, expect_in_why) == NULL) {
		fprintf(stderr, "  why: '%s', expected '%s'\n", why, expect_in_why);
		t_failed_now = 1;
	}
}

TEST(refusals)
{
	refused("[peer \"A\"]\nfingerprint = " FP "\nca = x.pem\n", "exactly one");
	refused("[peer \"A\"]\nrights = echo\n", "exactly one");
	refused("[peer \"A\"]\nfingerprint = AA:BB\n", "fingerprint");
	refused("[peer \"A\"]\nfingerprint = " FP ":00\n", "fingerprint");
	refused("[peer \"A\"]\nfingerprint = AAxBB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99\n",
	        "fingerprint");
	refused("[peer \"A\"]\nfingerprint = GA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99\n",
	        "fingerprint");
	refused("[peer \"A\"]\nfingerprint = " FP "\nrights = echo, delete\n", "rights");
	refused("[peer \"A\"]\nfingerprint = " FP "\nrights = echo,\n", "rights");
	refused("[peer \"A\"]\nfingerprint = " FP "\nrights = echo,,store\n", "rights");
	refused("[peer \"A\"]\nfingerprint = " FP "\nrigths = echo\n", "no key");
	refused("[peer \"A\"]\nfingerprint = " FP "\nhost = h\n", "host and port");
	refused("[peer \"A\"]\nfingerprint = " FP "\nport = 104\n", "host and port");
	refused("[peer \"A\"]\nfingerprint = " FP "\nhost = h\nport = 0\n", "port");
	refused("[peer \"A\"]\nfingerprint = " FP "\nhost = h\nport = 65536\n", "port");
	refused("[peer \"A\"]\nfingerprint = " FP "\nhost = h\nport = -1\n", "port");
	refused("[peer \"A\"]\nfingerprint = " FP "\nhost = h p\nport = 1\n", "host");
	refused("[peer \"A\"]\nfingerprint = " FP "\ncollection = a/b\n", "collection");
	{
		/* repeated keys and sections: refused already by the INI parser */
		struct peers *p = NULL;
		char why[256];
		CHECK(load("[peer \"A\"]\nfingerprint = " FP "\nrights = echo\nrights = store\n", &p, why, sizeof why) != ERR_OK);
		CHECK(load("[peer \"A\"]\nfingerprint = " FP "\n[peer \"A\"]\nca = x\n", &p, why, sizeof why) != ERR_OK);
		CHECK(p == NULL);
	}
	refused("[peer \"ABCDEFGHIJKLMNOPQ\"]\nfingerprint = " FP "\n", "AE title");
	refused("[peer \"A\\\\B\"]\nfingerprint = " FP "\n", "AE title");
	refused("[peer]\nfingerprint = " FP "\n", "AE title");
}

TEST(require_user)
{
	struct peers *p = NULL;
	char why[256] = "";

	CHECK_EQ_INT(load("[peer \"A\"]\nfingerprint = " FP "\nrequire_user = yes\n"
	                  "[peer \"B\"]\nfingerprint = " FP "\nrequire_user = no\n",
	                  &p, why, sizeof why),
	             ERR_OK);
	if (p != NULL) {
		CHECK(peers_find(p, "A") != NULL && peers_find(p, "A")->require_user);
		CHECK(peers_find(p, "B") != NULL && !peers_find(p, "B")->require_user);
		peers_free(p);
	}
	refused("[peer \"A\"]\nfingerprint = " FP "\nrequire_user = true\n", "require_user");
	refused("[peer \"A\"]\nfingerprint = " FP "\nrequire_user =\n", "require_user");
	refused("[peer \"A\"]\nfingerprint = " FP "\nrequire_user = Yes\n", "require_user");
}

TEST(tls_no)
{
	struct peers *p = NULL;
	char why[256] = "";

	/* tls = no: no fingerprint or ca (import from an old archive over
	 * plain TCP, which checks no certificate); default and tls = yes: TLS */
	CHECK_EQ_INT(load("[peer \"OLD\"]\nhost = 10.0.0.5\nport = 104\ntls = no\n"
	                  "[peer \"NEW\"]\nfingerprint = " FP "\ntls = yes\n"
	                  "[peer \"DEF\"]\nfingerprint = " FP "\n",
	                  &p, why, sizeof why),
	             ERR_OK);
	if (p != NULL) {
		const struct peer *pe = peers_find(p, "OLD");
		CHECK(pe != NULL && pe->plain && !pe->has_fp && pe->ca[0] == 0 && pe->port == 104);
		CHECK(peers_find(p, "NEW") != NULL && !peers_find(p, "NEW")->plain);
		CHECK(peers_find(p, "DEF") != NULL && !peers_find(p, "DEF")->plain);
		peers_free(p);
	}
	refused("[peer \"A\"]\nhost = h\nport = 104\n", "either fingerprint or ca");
	refused("[peer \"A\"]\nhost = h\nport = 104\ntls = yes\n", "tls = no");
	refused("[peer \"A\"]\ntls = off\n", "tls: yes or no");
	refused("[peer \"A\"]\ntls = no\nport = 104\n", "host and port go together");
	refused("[peer \"A\"]\nfingerprint = " FP "\nca = x.pem\ntls = no\n", "exactly one");
	refused("[peer \"A\"]\nfingerprint = " FP "\ntls = no\n", "tls = no goes without fingerprint and ca");
	refused("[peer \"A\"]\nca = x.pem\nhost = h\nport = 104\ntls = no\n", "tls = no goes without");
}

TEST(rights)
{
	unsigned r = 99;

	CHECK_EQ_INT(peers_rights_parse("", &r), ERR_OK);
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_INT(peers_rights_parse("get,move , echo,store,find", &r), ERR_OK);
	CHECK_EQ_INT(r, 31);
	CHECK_EQ_INT(peers_rights_parse("Echo", &r), ERR_PARSE);
	CHECK_EQ_STR(peers_right_name(PEER_RIGHT_GET), "get");
}

int main(void)
{
	RUN(full_peer);
	RUN(no_peers);
	RUN(refusals);
	RUN(require_user);
	RUN(tls_no);
	RUN(rights);
	return TEST_DONE();
}
