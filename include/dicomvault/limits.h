/* limits.h: every numeric limit of dicomvault in one place. Layer: base. */
#ifndef DICOMVAULT_LIMITS_H
#define DICOMVAULT_LIMITS_H

/* DICOM parsing */
#define DCM_MAX_DEPTH          32u          /* nested sequences */
#define DCM_MAX_ELEMENTS       (1u << 20)   /* elements in one file, all levels */
#define DCM_MAX_ITEMS          (1u << 20)   /* items in one sequence */
#define DCM_MAX_FRAGMENTS      (1u << 22)   /* pixel data fragments */
#define DCM_MAX_META_LEN       (64u * 1024) /* file meta information group */
#define DCM_MAX_VALUE_INMEM    (256u * 1024 * 1024) /* largest value held in memory */
#define DCM_MAX_INFLATED       ((unsigned long long)8 << 30) /* deflated dataset */
#define DCM_READ_CHUNK         (256u * 1024)  /* reader buffer */
#define DCM_DEFAULT_BULK       (64u * 1024)   /* values above: left in the source */
#define DCM_MAX_STRING_VM      (1u << 16)   /* values in one multi-valued string */

/* JSON */
#define JSON_MAX_INPUT         (256u * 1024 * 1024)
#define JSON_MAX_DEPTH         64u

/* configuration (INI) */
#define INI_MAX_INPUT          (1u << 20)
#define INI_MAX_LINE           4096u
#define INI_MAX_ENTRIES        10000u
#define INI_MAX_NAME           64u

/* text conversion */
#define CHARSET_MAX_TERMS      8u           /* values in Specific Character Set */

#endif
