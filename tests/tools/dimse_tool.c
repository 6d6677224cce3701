/* dimse_tool.c: command sets in and out for the pydicom oracle
 * (tests/integration/dimse_pydicom.py).
 *   dimse_tool parse < CMD      prints "name value" lines of the elements
 *                               present, then "check OK" or "check ERR why"
 *   dimse_tool build < LINES    reads "name value" lines, writes the
 *                               command set to stdout
 * Names: field msg_id msg_id_rsp priority data_set_type status error_id
 * remaining completed failed warning move_orig_id (decimal), sop_class
 * sop_instance move_dest move_orig_ae error_comment (text to the line
 * end). Layer: tests. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dicomvault/dimse.h"

struct num {
	const char *name;
	uint32_t flag;
	size_t off;
};

#define N(n, f) { #n, f, offsetof(struct dimse_cmd, n) }
static const struct num nums[] = {
	N(field, DIMSE_F_FIELD), N(msg_id, DIMSE_F_MSG_ID), N(msg_id_rsp, DIMSE_F_MSG_ID_RSP),
	N(priority, DIMSE_F_PRIORITY), N(data_set_type, DIMSE_F_DATA_SET_TYPE), N(status, DIMSE_F_STATUS),
	N(error_id, DIMSE_F_ERROR_ID), N(remaining, DIMSE_F_REMAINING), N(completed, DIMSE_F_COMPLETED),
	N(failed, DIMSE_F_FAILED), N(warning, DIMSE_F_WARNING), N(move_orig_id, DIMSE_F_MOVE_ORIG_ID),
};
static const struct num strs[] = {
	N(sop_class, DIMSE_F_SOP_CLASS), N(sop_instance, DIMSE_F_SOP_INSTANCE), N(move_dest, DIMSE_F_MOVE_DEST),
	N(move_orig_ae, DIMSE_F_MOVE_ORIG_AE), N(error_comment, DIMSE_F_ERROR_COMMENT),
};

static int do_parse(void)
{
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, stdin), i;
	struct dimse_cmd c;
	const char *why = "";
	enum err rc = dimse_cmd_parse(buf, n, &c);

	if (rc != ERR_OK) {
		printf("parse %s\n", err_str(rc));
		return 0;
	}
	for (i = 0; i < sizeof nums / sizeof nums[0]; i++)
		if (c.has & nums[i].flag)
			printf("%s %u\n", nums[i].name, *(const uint16_t *)((const char *)&c + nums[i].off));
	for (i = 0; i < sizeof strs / sizeof strs[0]; i++)
		if (c.has & strs[i].flag)
			printf("%s %s\n", strs[i].name, (const char *)&c + strs[i].off);
	if (c.has & DIMSE_F_OFFENDING)
		for (i = 0; i < c.noffending; i++)
			printf("offending %08x\n", c.offending[i]);
	rc = dimse_cmd_check(&c, &why);
	printf("check %s %s\n", rc == ERR_OK ? "OK" : "ERR", rc == ERR_OK ? "" : why);
	return 0;
}

static int do_build(void)
{
	struct dimse_cmd c;
	struct wbuf w;
	char line[2048];
	size_t i;

	memset(&c, 0, sizeof c);
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *sp = strchr(line, ' '), *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = 0;
		if (sp == NULL)
			continue;
		*sp++ = 0;
		for (i = 0; i < sizeof nums / sizeof nums[0]; i++)
			if (strcmp(line, nums[i].name) == 0) {
				*(uint16_t *)((char *)&c + nums[i].off) = (uint16_t)strtoul(sp, NULL, 0);
				c.has |= nums[i].flag;
			}
		for (i = 0; i < sizeof strs / sizeof strs[0]; i++)
			if (strcmp(line, strs[i].name) == 0) {
				snprintf((char *)&c + strs[i].off, 65, "%s", sp);   /* every string field holds 64 */
				c.has |= strs[i].flag;
			}
		if (strcmp(line, "offending") == 0 && c.noffending < DIMSE_MAX_OFFENDING) {
			c.offending[c.noffending++] = (uint32_t)strtoul(sp, NULL, 16);
			c.has |= DIMSE_F_OFFENDING;
		}
	}
	wbuf_init(&w, 1 << 20);
	if (dimse_cmd_build(&c, &w) != ERR_OK) {
		fprintf(stderr, "dimse_tool: build failed\n");
		return 1;
	}
	fwrite(w.p, 1, w.len, stdout);
	wbuf_fini(&w);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "parse") == 0)
		return do_parse();
	if (argc == 2 && strcmp(argv[1], "build") == 0)
		return do_build();
	fprintf(stderr, "usage: dimse_tool parse|build\n");
	return 2;
}
