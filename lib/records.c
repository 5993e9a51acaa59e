/*
 * records.c - the table of canonical record types.
 *
 * Adding a record type: write its message in proto/lienthong/v1/records/, include the
 * generated header here and add one row, keeping the table sorted by full name
 * (test_records checks the order, the names and that every row has a summary).
 */
#include "records.h"

#include <string.h>

#include "lienthong/v1/records/civil_status.pb-c.h"
#include "lienthong/v1/records/dossier.pb-c.h"
#include "lienthong/v1/records/edoc.pb-c.h"
#include "lienthong/v1/records/enterprise.pb-c.h"
#include "lienthong/v1/records/land.pb-c.h"
#include "lienthong/v1/records/population.pb-c.h"
#include "lienthong/v1/records/residence.pb-c.h"
#include "lienthong/v1/records/task.pb-c.h"

static const lt_record_type types[] = {
    {&lienthong__v1__records__birth_registration__descriptor,
     "birth registration (đăng ký khai sinh)"},
    {&lienthong__v1__records__dossier_status_event__descriptor,
     "administrative-procedure dossier status event (trạng thái hồ sơ thủ tục hành chính)"},
    {&lienthong__v1__records__edocument__descriptor,
     "e-document, edXML header (văn bản điện tử)"},
    {&lienthong__v1__records__edocument_status__descriptor,
     "e-document status reply, codes 01-06 (trạng thái xử lý văn bản)"},
    {&lienthong__v1__records__enterprise_registration__descriptor,
     "enterprise registration (đăng ký doanh nghiệp)"},
    {&lienthong__v1__records__land_parcel__descriptor, "land parcel (thửa đất)"},
    {&lienthong__v1__records__population_record__descriptor,
     "population record (thông tin công dân, CSDLQG về dân cư)"},
    {&lienthong__v1__records__residence_change__descriptor,
     "residence change (thay đổi cư trú)"},
    {&lienthong__v1__records__task_assignment__descriptor, "task assignment (giao nhiệm vụ)"},
    {&lienthong__v1__records__task_reminder__descriptor,
     "task reminder or overdue warning (nhắc việc, cảnh báo quá hạn)"},
    {&lienthong__v1__records__task_status_update__descriptor,
     "task status update (cập nhật tình trạng nhiệm vụ)"},
};

#define N_TYPES (sizeof types / sizeof types[0])

const ProtobufCMessageDescriptor *lt_records_find(const char *full_name)
{
    if (full_name == NULL)
        return NULL;
    for (size_t i = 0; i < N_TYPES; i++)
        if (strcmp(types[i].desc->name, full_name) == 0)
            return types[i].desc;
    return NULL;
}

size_t lt_records_count(void)
{
    return N_TYPES;
}

const lt_record_type *lt_records_at(size_t i)
{
    return i < N_TYPES ? &types[i] : NULL;
}
