/* qido.c: QIDO-RS (PS3.18 10.6) of the HTTPS listener. Layer: daemon. */
#include "http_int.h"

enum MHD_Result qido_rs(struct http_req *r, const char *const seg[], const size_t len[], size_t n)
{
	(void)seg;
	(void)len;
	(void)n;
	return http_problem(r, MHD_HTTP_NOT_FOUND, "no such resource (QIDO-RS is not implemented yet)", NULL);
}
