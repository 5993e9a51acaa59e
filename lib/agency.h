/*
 * agency.h - agency identities: "VN:GOV:<agency code>:<subsystem>", the X-Road shape already
 * used in Vietnam (e.g. VN:GOV:000.00.00.G22:vpcpdvcprovider).
 *
 *   VN            instance (only "VN")
 *   GOV           member class (only "GOV")
 *   agency code   one of three forms, at most 35 characters of [0-9A-Z.]:
 *     QCVN102     V1V2V3.Z1Z2.Y1Y2.Xnn, e.g. 000.00.00.H29 (UBND TP.HCM), 000.00.18.G12;
 *                 the rightmost group is the level-1 code (G ministries, H/K provinces)
 *     QCVN102_EXT a QCVN 102 code followed by lower-level groups, e.g. 000.00.00.H29.760
 *                 (the form our broker config examples use for HCMC's district 760)
 *     QD20        the left-to-right form of Decision 20/2020/QD-TTg (amended 09/2025): a
 *                 level-1 code first, then one group per level, e.g. H29.20.1, G09.20
 *   subsystem     1..64 of [a-z0-9_-], starting with a letter or digit (e.g. hotich)
 *
 * Normal form: surrounding ASCII blanks trimmed, instance, class and code upper-case,
 * subsystem lower-case. Two ids name the same agency exactly when their normal forms are
 * equal byte for byte; certificates carry the normal form in their subject CN.
 *
 * Pure functions on caller memory: safe from any thread.
 */
#ifndef LT_LIB_AGENCY_H
#define LT_LIB_AGENCY_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>

#define LT_AGENCY_ID_MAX 128       /* buffer size for a normalized id, with its NUL */
#define LT_AGENCY_CODE_MAX 35      /* characters of an agency code (Decision 20/2020) */
#define LT_AGENCY_SUBSYSTEM_MAX 64 /* characters of a subsystem code */
#define LT_AGENCY_INPUT_MAX 256    /* longer inputs are refused before looking at them */

typedef enum lt_agency_form {
    LT_AGENCY_FORM_QCVN102 = 1,
    LT_AGENCY_FORM_QCVN102_EXT = 2,
    LT_AGENCY_FORM_QD20 = 3,
} lt_agency_form;

/* A parsed, normalized agency id. Plain data; copy freely. */
typedef struct lt_agency_id {
    char id[LT_AGENCY_ID_MAX];                   /* the whole id, normal form */
    char code[LT_AGENCY_CODE_MAX + 1];           /* "000.00.00.H29" */
    char subsystem[LT_AGENCY_SUBSYSTEM_MAX + 1]; /* "vanphong" */
    char level1[4];                              /* level-1 code: "H29", "G01" */
    lt_agency_form form;
} lt_agency_id;

/* Parse s[0..len) (need not be NUL-terminated) into *out, normalized. LT_EAGENCY_ID with the
 * reason ("agency code '000.00.H29': QCVN 102 codes are ddd.dd.dd.Xnn") when malformed;
 * *out is untouched on error. */
lt_err lt_agency_parse(const char *s, size_t len, lt_agency_id *out, lt_why *why);

/* Normalize the NUL-terminated id s into out. LT_EAGENCY_ID when malformed (out untouched). */
lt_err lt_agency_normalize(const char *s, char out[LT_AGENCY_ID_MAX], lt_why *why);

/* True when s is a valid id already in normal form (what certificates and headers carry). */
bool lt_agency_is_normalized(const char *s);

/* Parse an agency code alone (no VN:GOV: prefix, no subsystem), e.g. an edXML OrganId, into
 * its normal form. LT_EAGENCY_ID when malformed; out and *form untouched on error.
 * form may be NULL. */
lt_err lt_agency_code_normalize(const char *s, size_t len, char out[LT_AGENCY_CODE_MAX + 1],
                                lt_agency_form *form, lt_why *why);

/* "QCVN102", "QCVN102_EXT", "QD20" ("?" for other values). */
const char *lt_agency_form_name(lt_agency_form form);

#endif
