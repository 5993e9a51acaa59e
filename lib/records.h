/*
 * records.h - the registry of canonical record types (proto/lienthong/v1/records/).
 *
 * Every record type an agency may publish is listed here once, by its fully qualified
 * protobuf name ("lienthong.v1.records.BirthRegistration"), which is also what an envelope's
 * Header.record_type carries. Helper messages (Address, Person, Organ ...) are not record
 * types and are not listed. The table is constant: thread-safe, nothing to free.
 */
#ifndef LT_LIB_RECORDS_H
#define LT_LIB_RECORDS_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct lt_record_type {
    const ProtobufCMessageDescriptor *desc; /* desc->name is the full name */
    const char *summary;                    /* one line: English, then the Vietnamese term */
} lt_record_type;

/* The descriptor of the record type whose fully qualified name is full_name, or NULL if
 * full_name is NULL or names no record type (helper messages such as
 * "lienthong.v1.records.Address" are not record types). */
const ProtobufCMessageDescriptor *lt_records_find(const char *full_name);

/* Number of record types; lt_records_at(i) is valid for i < lt_records_count(). */
size_t lt_records_count(void);

/* The i-th record type (stable order, by full name), or NULL if i is out of range. Borrowed
 * from a static table. */
const lt_record_type *lt_records_at(size_t i);

#endif
