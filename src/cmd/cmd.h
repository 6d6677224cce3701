/* cmd.h: the subcommands of the dicomvault command line. Layer: cmd. */
#ifndef DICOMVAULT_CMD_H
#define DICOMVAULT_CMD_H

#include <stdarg.h>
#include <stdbool.h>
#include "dicomvault/args.h"
#include "dicomvault/audit.h"
#include "dicomvault/dataset.h"

#define EXIT_USAGE 2

int cmd_dump(int argc, char **argv);
int cmd_json(int argc, char **argv);
int cmd_deid(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_reidentify(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_user(int argc, char **argv);

/* A subcommand's options and arguments (args_parse from argv[first]).
 * CMD_ARGS_GO when the command goes on; otherwise its exit status: 0 after
 * printing usage to stdout for --help, EXIT_USAGE after "dicomvault NAME:
 * why" and usage on stderr. */
#define CMD_ARGS_GO (-1)
WUR int cmd_args(const char *name, const char *usage, int argc, char **argv, int first, const struct args_opt *opts,
                 const char **pos, size_t cap, size_t *npos);
/* "dicomvault NAME: MESSAGE" and usage on stderr; returns EXIT_USAGE. */
int cmd_usage_err(const char *name, const char *usage, const char *fmt, ...) PRINTF_LIKE(3, 4);
int cmd_usage_verr(const char *name, const char *usage, const char *fmt, va_list ap) PRINTF_LIKE(3, 0);
/* Appends o to table t of cap entries and ends it after o (aborts when
 * it would not fit: tables are sized by their code). */
void cmd_opts_add(struct args_opt *t, size_t cap, size_t *k, struct args_opt o);
/* Whether -h or --help is among argv[first..] before any "--" (for a
 * command whose subcommand is missing or unknown). */
bool cmd_wants_help(int argc, char **argv, int first);

/* Reads a DICOM file for display; prints a clear error naming the file,
 * offset and reason, and returns NULL on failure. */
struct dcm_file *cmd_read_file(const char *path, struct src *src, const struct dcm_read_opts *o);
/* Writes f as Part 10 (meta regenerated) to out through a temporary name
 * in the same folder and a rename, mode 0666 less the umask, or 0600 when
 * private_file (patient data); the reason in why on failure. */
WUR enum err cmd_write_dicom(struct dcm_file *f, const char *out, bool private_file, char *why, size_t whylen);
/* The text as a QR code of half blocks on stdout (an otpauth URI). */
void cmd_print_qr(const char *text);
/* ds (f's data set or meta) as one line of DICOM JSON on stdout; 0, or 1
 * after an error naming path (the line, cut short, still ends). */
int cmd_print_json(const struct dcm_file *f, const struct dcm_ds *ds, const char *path);
/* s as a JSON string on stdout (quotes, backslashes, controls escaped). */
void cmd_json_str(const char *s);
/* The local operator's login name, the actor of the command line's audit
 * records. */
const char *cmd_operator(void);
/* *r emptied, then action, outcome and reason set, and the actor the
 * local operator (cmd_operator, role operator, address local). */
void cmd_operator_rec(struct audit_rec *r, const char *action, enum audit_outcome oc, const char *reason);
/* SIGPIPE ignored: for commands that show a secret once or must undo a
 * change nobody received (init, user add, token create), a closed pipe on
 * stdout is then a write error they handle, not a silent death that
 * leaves the account or token usable. */
void cmd_no_sigpipe(void);
/* A UID fit for a file name or a query (vr_uid_ok: no empty component,
 * so never "." or ".."; leading zeros, found in the wild, pass). */
bool cmd_uid_ok(const char *s);
/* 0 when dir (vault_resolve's) is a directory; else 1 after "dicomvault
 * NAME: no vault at DIR: give --vault DIR or set DICOMVAULT_HOME"
 * (vault_present), before the command's own "NAME: DIR: why" would name
 * the directory twice. */
int cmd_vault_present(const char *name, const char *dir);
/* Writes a buffer to stdout; 0 or 1. */
int cmd_write_stdout(const void *p, size_t n);

#endif
