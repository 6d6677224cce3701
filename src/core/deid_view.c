/* deid_view.c: the vault's de-identification setup (deid_view.h): project
 * key derived from the master key, profile, masking rules and escrow
 * certificates from dicomvault.conf. Layer: core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/cms.h"
#include "dicomvault/crypto.h"
#include "dicomvault/deid_view.h"
#include "dicomvault/ini.h"
#include "dicomvault/vault.h"

struct deid_view {
	struct deid_opts o;
	struct secret *key;
	struct cms_recipients *escrow;
};

void deid_view_free(struct deid_view *dv)
{
	if (dv == NULL)
		return;
	secret_free(dv->key);
	cms_recipients_free(dv->escrow);
	free(dv);
}

enum err deid_view_open(const struct vault *v, const char *project, const char *profile, struct deid_view **out,
                        char *why, size_t whylen)
{
	static const char salt[] = "dicomvault-deid-project-v1";
	struct deid_view *dv;
	const char *ec;
	enum err rc;

	*out = NULL;
	if (project == NULL)
		project = ini_get(v->conf, "deid", NULL, "project");
	if (project == NULL || project[0] == 0)
		project = "default";
	if (strlen(project) > DEID_PROJECT_MAX)
		return err_why(why, whylen, ERR_PARSE, "a project name is at most %u characters", DEID_PROJECT_MAX);
	if (profile == NULL)
		profile = ini_get(v->conf, "deid", NULL, "profile");
	if (profile == NULL || profile[0] == 0)
		profile = "basic";
	dv = calloc(1, sizeof *dv);
	if (dv == NULL)
		return ERR_NOMEM;
	rc = deid_parse_profile(profile, &dv->o.options, why, whylen);
	if (rc == ERR_OK)
		rc = secret_new(32, &dv->key);
	if (rc == ERR_OK)
		rc = kdf_hkdf_sha256(v->mk, salt, sizeof salt - 1, project, strlen(project), secret_mut(dv->key), 32);
	ec = ini_get(v->conf, "deid", NULL, "escrow_cert");
	if (rc == ERR_OK && ec != NULL && ec[0] != 0) {
		char path[VAULT_PATH_MAX + 256];
		if (ec[0] == '/')
			snprintf(path, sizeof path, "%s", ec);
		else
			snprintf(path, sizeof path, "%s/%s", v->dir, ec);
		rc = cms_recipients_load(path, &dv->escrow, why, whylen);
	}
	if (rc != ERR_OK) {
		deid_view_free(dv);
		return rc;
	}
	secret_seal(dv->key);
	dv->o.project_key = dv->key;
	dv->o.masks = v->masks;
	dv->o.escrow = dv->escrow;
	*out = dv;
	return ERR_OK;
}

const struct deid_opts *deid_view_opts(const struct deid_view *dv)
{
	return &dv->o;
}

enum err deid_view_uid(const struct deid_view *dv, const char *uid, char out[DEID_UID_MAX + 1])
{
	return deid_uid_map(dv->key, uid, strlen(uid), out);
}
