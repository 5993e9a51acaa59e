/*
 * gen_samples.c - writes the sample feeds of adapters/samples/ with the project's own
 * encoders (charset.h), deterministically (fixed seed): running it again gives the same
 * bytes. usage: lt_gen_samples DIR
 *
 *   births_760_cp1258.csv       district 1 (GSO 760) birth registrations, Windows-1258,
 *                               as Excel writes CSV in Vietnam: ';' separators, CRLF,
 *                               dd/mm/yyyy dates, quoted fields holding commas
 *   residence_26737_tcvn3.txt   ward Đa Kao (26737, pre-2025 code) residence changes,
 *                               TCVN3 fixed-width (layout in README.md; widths in bytes)
 *   businesses_vni.csv          business registry export, VNI-Windows, ',' separators
 *   edxml/NAME.edxml             one edXML package (UTF-8) and its status replies
 *   edxml/5123-VPCP-KGVX.edxml   a package written as real senders do: elements under the
 *                                edXML: prefix, declared on edXMLEnvelope only and used
 *                                after it (AttachmentEncoded), an XML-DSig Signature, two
 *                                attachments (base64 wrapped over lines)
 *
 * Names, ward codes and ids are invented but shaped like the real ones: personal ids are
 * 12 digits, province of birth (079 = HCMC) + century/sex digit + year + 6 digits.
 */
#include "charset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long rng = 0x6c69656e74686f6eULL; /* "lienthon" */

static unsigned pick(unsigned n)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng >> 33) % n);
}

#define PICK(a) (a[pick(sizeof a / sizeof a[0])])

static const char *const family[] = {"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh",
                                     "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
                                     "Dương", "Lý", "Trương", "Lâm"};
static const char *const middle_m[] = {"Văn", "Minh", "Đức", "Hoàng", "Quốc", "Gia", "Thanh", "Hữu"};
static const char *const middle_f[] = {"Thị", "Ngọc", "Thu", "Thanh", "Bảo", "Kim", "Mỹ", "Hồng"};
static const char *const given_m[] = {"An", "Bình", "Dũng", "Hải", "Hiếu", "Khang", "Khoa",
                                      "Long", "Nhân", "Nam", "Phúc", "Quân", "Sơn", "Trí",
                                      "Tuấn", "Đạt", "Khôi", "Thịnh", "Vinh", "Huy"};
static const char *const given_f[] = {"Châu", "Giang", "Hà", "Hạnh", "Hương", "Lan", "Linh",
                                      "Mai", "My", "Ngân", "Nhi", "Phương", "Quyên", "Thảo",
                                      "Thư", "Trang", "Uyên", "Vy", "Yến", "Ánh"};
static const struct {
    const char *code, *name;
} wards[] = {
    {"26734", "Tân Định"},        {"26737", "Đa Kao"},        {"26740", "Bến Nghé"},
    {"26743", "Bến Thành"},       {"26746", "Nguyễn Thái Bình"}, {"26749", "Phạm Ngũ Lão"},
    {"26752", "Cầu Ông Lãnh"},    {"26755", "Cô Giang"},      {"26758", "Nguyễn Cư Trinh"},
    {"26761", "Cầu Kho"},
};
static const char *const streets[] = {"Lê Thánh Tôn", "Nguyễn Huệ", "Hai Bà Trưng",
                                      "Đinh Tiên Hoàng", "Trần Hưng Đạo", "Điện Biên Phủ",
                                      "Lý Tự Trọng", "Tôn Đức Thắng", "Nguyễn Thị Minh Khai",
                                      "Trần Quang Khải", "Đề Thám", "Cống Quỳnh"};
static const char *const hospitals[] = {"Bệnh viện Từ Dũ, Quận 1, TP. Hồ Chí Minh",
                                        "Bệnh viện Hùng Vương, Quận 5, TP. Hồ Chí Minh",
                                        "Bệnh viện Nhân dân Gia Định, Bình Thạnh, TP. Hồ Chí Minh",
                                        "Trạm y tế phường Tân Định, Quận 1, TP. Hồ Chí Minh"};
static const struct {
    const char *code, *name;
} birth_provinces[] = {{"079", "TP. Hồ Chí Minh"}, {"001", "Hà Nội"}, {"074", "Bình Dương"},
                       {"075", "Đồng Nai"},        {"051", "Quảng Ngãi"}, {"040", "Nghệ An"},
                       {"087", "Đồng Tháp"},       {"052", "Bình Định"}};

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL)
            abort();
        b->cap = cap;
    }
}

static void write_encoded(const char *dir, const char *name, lt_charset cs, const struct buf *b)
{
    uint8_t *out = NULL;
    size_t n = 0;
    lt_why why;
    if (lt_charset_encode(cs, b->p, b->len, &out, &n, &why) != LT_OK) {
        fprintf(stderr, "gen_samples: %s: %s\n", name, why.msg);
        exit(1);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(out, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "gen_samples: cannot write %s\n", path);
        exit(1);
    }
    free(out);
}

static void person(char *name, size_t cap, int female)
{
    snprintf(name, cap, "%s %s %s", PICK(family), female ? PICK(middle_f) : PICK(middle_m),
             female ? PICK(given_f) : PICK(given_m));
}

/* 12-digit personal id: province of birth, century/sex digit, year (2 digits), 6 digits. */
static void personal_id(char *out, size_t cap, const char *prov, int year, int female)
{
    int cs = (year >= 2000 ? 2 : 0) + female;
    snprintf(out, cap, "%s%d%02d%06u", prov, cs, year % 100, pick(1000000));
}

static void births(const char *dir)
{
    struct buf b = {0};
    put(&b, "STT;Số định danh cá nhân;Họ và tên;Ngày sinh;Giới tính;Nơi sinh;Mã phường;"
            "Họ tên mẹ;Họ tên cha;Ngày đăng ký;Số đăng ký\r\n");
    for (int i = 1; i <= 60; i++) {
        int female = (int)pick(2);
        char child[96], mother[96], father[96], id[16];
        person(child, sizeof child, female);
        person(mother, sizeof mother, 1);
        person(father, sizeof father, 0);
        /* the child takes the father's family name */
        const char *fam_end = strchr(father, ' ');
        const char *given = strchr(child, ' ');
        char child2[128];
        snprintf(child2, sizeof child2, "%.*s%s", (int)(fam_end - father), father, given);
        int day = 1 + (int)pick(28), month = 1 + (int)pick(12);
        personal_id(id, sizeof id, "079", 2024, female);
        put(&b, "%d;%s;%s;%02d/%02d/2024;%s;\"%s\";%s;%s;%s;%02d/%02d/2024;%d/2024\r\n", i, id,
            child2, day, month, female ? "Nữ" : "Nam", PICK(hospitals),
            wards[pick(sizeof wards / sizeof wards[0])].code, mother, father,
            day, month < 12 ? month + 1 : 12, 100 + i);
    }
    write_encoded(dir, "births_760_cp1258.csv", LT_CHARSET_CP1258, &b);
    free(b.p);
}

/* Pad s with spaces to width BYTES of its TCVN3 form (one byte per letter in TCVN3). */
static void fixed(struct buf *b, const char *s, size_t width)
{
    uint8_t *enc = NULL;
    size_t n = 0;
    lt_why why;
    if (lt_charset_encode(LT_CHARSET_TCVN3, s, strlen(s), &enc, &n, &why) != LT_OK || n > width) {
        fprintf(stderr, "gen_samples: '%s' does not fit %zu TCVN3 bytes\n", s, width);
        exit(1);
    }
    free(enc);
    put(b, "%s%*s", s, (int)(width - n), "");
}

static void residence(const char *dir)
{
    static const char *const kinds[] = {"DKTT", "XOTT", "DKTR", "TVNG"};
    struct buf b = {0};
    for (int i = 1; i <= 40; i++) {
        int female = (int)pick(2), year = 1950 + (int)pick(70);
        char name[96], id[16], addr[160];
        person(name, sizeof name, female);
        unsigned p = pick(sizeof birth_provinces / sizeof birth_provinces[0]);
        personal_id(id, sizeof id, birth_provinces[p].code, year, female);
        const char *kind = PICK(kinds);
        const char *from = i % 3 ? wards[pick(10)].code : "     ";
        snprintf(addr, sizeof addr, "%u %s, khu phố %u", 1 + pick(250), PICK(streets),
                 1 + pick(6));
        fixed(&b, id, 12);
        fixed(&b, name, 30);
        put(&b, "%04d%02u%02u", year, 1 + pick(12), 1 + pick(28));
        fixed(&b, kind, 4);
        fixed(&b, from, 5);
        fixed(&b, "26737", 5);
        put(&b, "2025%02u%02u", 1 + pick(6), 1 + pick(28));
        fixed(&b, addr, 50);
        put(&b, "\r\n");
    }
    write_encoded(dir, "residence_26737_tcvn3.txt", LT_CHARSET_TCVN3, &b);
    free(b.p);
}

static void businesses(const char *dir)
{
    static const char *const kinds[] = {"Công ty TNHH một thành viên", "Công ty TNHH hai thành viên trở lên",
                                        "Công ty cổ phần", "Doanh nghiệp tư nhân"};
    static const char *const trades[] = {"Thương mại", "Dịch vụ", "Xây dựng", "Vận tải",
                                         "Du lịch", "Thực phẩm", "Công nghệ", "In ấn"};
    static const char *const brands[] = {"Sài Gòn Xanh", "Phú Mỹ", "Bến Thành", "Hoàng Gia",
                                         "Tân Định", "Nam Việt", "Đông Dương", "Ánh Dương",
                                         "Kim Long", "Thiên Phúc"};
    static const char *const states[] = {"Đang hoạt động", "Đang hoạt động", "Đang hoạt động",
                                         "Tạm ngừng kinh doanh",
                                         "Không hoạt động tại địa chỉ đã đăng ký"};
    struct buf b = {0};
    put(&b, "Mã số doanh nghiệp,Tên doanh nghiệp,Loại hình,Địa chỉ trụ sở,Mã phường,"
            "Người đại diện,Ngày thành lập,Vốn điều lệ (đồng),Tình trạng\r\n");
    for (int i = 1; i <= 50; i++) {
        char rep[96];
        person(rep, sizeof rep, (int)pick(2));
        unsigned w = pick(sizeof wards / sizeof wards[0]);
        const char *kind = PICK(kinds);
        const char *prefix = strstr(kind, "TNHH")      ? "Công ty TNHH"
                             : strstr(kind, "cổ phần") ? "Công ty cổ phần"
                                                       : "Doanh nghiệp tư nhân";
        unsigned t1 = pick(sizeof trades / sizeof trades[0]);
        unsigned t2 = (t1 + 1 + pick(sizeof trades / sizeof trades[0] - 1)) % (sizeof trades / sizeof trades[0]);
        put(&b, "03%08u,\"%s %s, %s %s\",%s,\"%u %s, phường %s, Quận 1, TP. Hồ Chí Minh\","
                "%s,%s,%02u/%02u/%04u,\"%u.%03u.000.000\",%s\r\n",
            10000000 + pick(90000000), prefix, trades[t1], trades[t2], PICK(brands),
            kind, 1 + pick(200), PICK(streets), wards[w].name, wards[w].code, rep,
            1 + pick(28), 1 + pick(12), 2005 + pick(20), 1 + pick(20), pick(1000), PICK(states));
    }
    write_encoded(dir, "businesses_vni.csv", LT_CHARSET_VNI, &b);
    free(b.p);
}

/* QCVN 102:2016's namespace, as the packages of the national document exchange use it. */
static const char ns[] = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

static void edxml(const char *dir)
{
    struct buf b = {0};
    put(&b,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<edXML xmlns=\"%s\">\n"
        "  <edXMLEnvelope>\n"
        "    <edXMLHeader>\n"
        "      <MessageHeader>\n"
        "        <From>\n"
        "          <OrganId>000.00.00.H29</OrganId>\n"
        "          <OrganizationInCharge>Ủy ban nhân dân Thành phố Hồ Chí Minh</OrganizationInCharge>\n"
        "          <OrganName>Văn phòng Ủy ban nhân dân Thành phố</OrganName>\n"
        "          <OrganAdd>86 Lê Thánh Tôn, phường Sài Gòn, TP. Hồ Chí Minh</OrganAdd>\n"
        "          <Email>vpub@tphcm.gov.vn</Email>\n"
        "          <Telephone>02838296052</Telephone>\n"
        "        </From>\n"
        "        <To>\n"
        "          <OrganId>000.00.00.G22</OrganId>\n"
        "          <OrganName>Văn phòng Chính phủ</OrganName>\n"
        "        </To>\n"
        "        <To>\n"
        "          <OrganId>000.00.00.G09</OrganId>\n"
        "          <OrganName>Bộ Nội vụ</OrganName>\n"
        "        </To>\n"
        "        <Code>\n"
        "          <CodeNumber>2417</CodeNumber>\n"
        "          <CodeNotation>UBND-VX</CodeNotation>\n"
        "        </Code>\n"
        "        <PromulgationInfo>\n"
        "          <Place>Thành phố Hồ Chí Minh</Place>\n"
        "          <PromulgationDate>2025/06/20</PromulgationDate>\n"
        "        </PromulgationInfo>\n"
        "        <DocumentType>\n"
        "          <Type>3</Type>\n"
        "          <TypeName>Công văn</TypeName>\n"
        "        </DocumentType>\n"
        "        <Subject>Về việc báo cáo kết quả đăng ký khai sinh, đăng ký thường trú quý II năm 2025</Subject>\n"
        "        <Content>Ủy ban nhân dân Thành phố báo cáo số liệu đăng ký hộ tịch và cư trú của các phường thuộc Quận 1.</Content>\n"
        "        <SignerInfo>\n"
        "          <Competence>KT. CHỦ TỊCH</Competence>\n"
        "          <Position>Phó Chủ tịch</Position>\n"
        "          <FullName>Trần Thị Diệu Thúy</FullName>\n"
        "        </SignerInfo>\n"
        "        <DueDate>2025/07/15</DueDate>\n"
        "        <ToPlaces>\n"
        "          <Place>Văn phòng Chính phủ</Place>\n"
        "          <Place>Bộ Nội vụ</Place>\n"
        "        </ToPlaces>\n"
        "        <OtherInfo>\n"
        "          <Priority>0</Priority>\n"
        "          <SphereOfPromulgation>Liên thông văn bản quốc gia</SphereOfPromulgation>\n"
        "          <TyperNotation>NTH</TyperNotation>\n"
        "          <PromulgationAmount>5</PromulgationAmount>\n"
        "          <PageAmount>3</PageAmount>\n"
        "        </OtherInfo>\n"
        "        <SteeringType>0</SteeringType>\n"
        "        <DocumentId>000.00.00.H29,2025/06/20,2417/UBND-VX</DocumentId>\n"
        "      </MessageHeader>\n"
        "      <TraceHeaderList>\n"
        "        <TraceHeader>\n"
        "          <OrganId>000.00.00.H29</OrganId>\n"
        "          <Timestamp>2025/06/20 16:35:56</Timestamp>\n"
        "        </TraceHeader>\n"
        "        <Bussiness>\n"
        "          <BussinessDocType>0</BussinessDocType>\n"
        "          <BussinessDocReason>Văn bản mới</BussinessDocReason>\n"
        "        </Bussiness>\n"
        "      </TraceHeaderList>\n"
        "    </edXMLHeader>\n"
        "    <edXMLBody>\n"
        "      <edXMLManifest version=\"1.0\">\n"
        "        <Reference>\n"
        "          <ContentId>cid:7d1f0c52-4e0b-4a53-9a57-2417ubndvx01</ContentId>\n"
        "          <AttachmentName>2417-UBND-VX.pdf</AttachmentName>\n"
        "          <Description>Công văn 2417/UBND-VX</Description>\n"
        "        </Reference>\n"
        "      </edXMLManifest>\n"
        "    </edXMLBody>\n"
        "  </edXMLEnvelope>\n"
        "  <AttachmentEncoded>\n"
        "    <Attachment>\n"
        "      <ContentId>cid:7d1f0c52-4e0b-4a53-9a57-2417ubndvx01</ContentId>\n"
        "      <AttachmentName>2417-UBND-VX.pdf</AttachmentName>\n"
        "      <ContentType>application/pdf</ContentType>\n"
        "      <ContentTransferEncoded>JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0YK</ContentTransferEncoded>\n"
        "    </Attachment>\n"
        "  </AttachmentEncoded>\n"
        "</edXML>\n",
        ns);
    write_encoded(dir, "edxml/2417-UBND-VX.edxml", LT_CHARSET_UTF8, &b);
    free(b.p);

    static const struct {
        const char *code, *desc, *ts, *staff;
    } st[] = {
        {"01", "Đã đến", "2025/06/20 16:40:12", "Nguyễn Văn Thành"},
        {"03", "Đã tiếp nhận", "2025/06/21 08:15:03", "Lê Thị Hồng Nhung"},
        {"06", "Hoàn thành", "2025/06/27 10:02:47", "Phạm Quốc Bảo"},
    };
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        struct buf s = {0};
        put(&s,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<edXML xmlns=\"%s\">\n"
            "  <edXMLEnvelope>\n"
            "    <edXMLHeader>\n"
            "      <MessageStatus>\n"
            "        <ResponseFor>\n"
            "          <OrganId>000.00.00.H29</OrganId>\n"
            "          <Code>2417/UBND-VX</Code>\n"
            "          <PromulgationDate>2025/06/20</PromulgationDate>\n"
            "          <DocumentId>000.00.00.H29,2025/06/20,2417/UBND-VX</DocumentId>\n"
            "        </ResponseFor>\n"
            "        <From>\n"
            "          <OrganId>000.00.00.G22</OrganId>\n"
            "          <OrganName>Văn phòng Chính phủ</OrganName>\n"
            "          <OrganAdd>Số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội</OrganAdd>\n"
            "        </From>\n"
            "        <StatusCode>%s</StatusCode>\n"
            "        <Description>%s</Description>\n"
            "        <Timestamp>%s</Timestamp>\n"
            "        <StaffInfo>\n"
            "          <Department>Vụ Tổng hợp</Department>\n"
            "          <Staff>%s</Staff>\n"
            "          <Mobile>0912000%03zu</Mobile>\n"
            "          <Email>vanthu@chinhphu.vn</Email>\n"
            "        </StaffInfo>\n"
            "      </MessageStatus>\n"
            "    </edXMLHeader>\n"
            "  </edXMLEnvelope>\n"
            "</edXML>\n",
            ns, st[i].code, st[i].desc, st[i].ts, st[i].staff, i + 1);
        char name[96];
        snprintf(name, sizeof name, "edxml/2417-UBND-VX.status-%s.edxml", st[i].code);
        write_encoded(dir, name, LT_CHARSET_UTF8, &s);
        free(s.p);
    }
}

/* The shape of packages seen from real senders (QCVN 102 sample code): the root in the
 * default namespace, xmlns:edXML declared on edXMLEnvelope only, and AttachmentEncoded -
 * the envelope's sibling - still written with the edXML: prefix, out of its scope; an
 * undeclared xlink: attribute; an enveloped XML-DSig Signature in its own namespace. */
static void edxml_prefixed(const char *dir)
{
    struct buf b = {0};
    put(&b,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<edXML xmlns=\"%s\">\n"
        "  <edXML:edXMLEnvelope xmlns:edXML=\"%s\">\n"
        "    <edXML:edXMLHeader>\n"
        "      <edXML:MessageHeader>\n"
        "        <edXML:From>\n"
        "          <edXML:OrganId>000.00.00.G22</edXML:OrganId>\n"
        "          <edXML:OrganizationInCharge>Chính phủ</edXML:OrganizationInCharge>\n"
        "          <edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName>\n"
        "          <edXML:OrganAdd>Số 1 Hoàng Hoa Thám, Ba Đình, Hà Nội</edXML:OrganAdd>\n"
        "          <edXML:Email>vanthu@chinhphu.vn</edXML:Email>\n"
        "          <edXML:Telephone>02408043100</edXML:Telephone>\n"
        "        </edXML:From>\n"
        "        <edXML:To>\n"
        "          <edXML:OrganId>000.00.00.H29</edXML:OrganId>\n"
        "          <edXML:OrganName>Ủy ban nhân dân Thành phố Hồ Chí Minh</edXML:OrganName>\n"
        "        </edXML:To>\n"
        "        <edXML:To>\n"
        "          <edXML:OrganId>000.00.00.H41</edXML:OrganId>\n"
        "          <edXML:OrganName>Ủy ban nhân dân tỉnh Nghệ An</edXML:OrganName>\n"
        "        </edXML:To>\n"
        "        <edXML:Code>\n"
        "          <edXML:CodeNumber>5123</edXML:CodeNumber>\n"
        "          <edXML:CodeNotation>VPCP-KGVX</edXML:CodeNotation>\n"
        "        </edXML:Code>\n"
        "        <edXML:PromulgationInfo>\n"
        "          <edXML:Place>Hà Nội</edXML:Place>\n"
        "          <edXML:PromulgationDate>2025/07/08</edXML:PromulgationDate>\n"
        "        </edXML:PromulgationInfo>\n"
        "        <edXML:DocumentType>\n"
        "          <edXML:Type>3</edXML:Type>\n"
        "          <edXML:TypeName>Công văn</edXML:TypeName>\n"
        "        </edXML:DocumentType>\n"
        "        <edXML:Subject>Về việc thống nhất dữ liệu hộ tịch sau sắp xếp đơn vị hành chính cấp xã</edXML:Subject>\n"
        "        <edXML:Content>Văn phòng Chính phủ đề nghị các địa phương cập nhật mã đơn vị hành chính mới trong cơ sở dữ liệu hộ tịch.</edXML:Content>\n"
        "        <edXML:SignerInfo>\n"
        "          <edXML:Competence>KT. BỘ TRƯỞNG, CHỦ NHIỆM</edXML:Competence>\n"
        "          <edXML:Position>Phó Chủ nhiệm</edXML:Position>\n"
        "          <edXML:FullName>Nguyễn Văn Hùng</edXML:FullName>\n"
        "        </edXML:SignerInfo>\n"
        "        <edXML:DueDate>2025/08/15</edXML:DueDate>\n"
        "        <edXML:ToPlaces>\n"
        "          <edXML:Place>UBND TP. Hồ Chí Minh</edXML:Place>\n"
        "          <edXML:Place>UBND tỉnh Nghệ An</edXML:Place>\n"
        "        </edXML:ToPlaces>\n"
        "        <edXML:OtherInfo>\n"
        "          <edXML:Priority>1</edXML:Priority>\n"
        "          <edXML:SphereOfPromulgation>Liên thông văn bản quốc gia</edXML:SphereOfPromulgation>\n"
        "          <edXML:TyperNotation>PVT</edXML:TyperNotation>\n"
        "          <edXML:PromulgationAmount>65</edXML:PromulgationAmount>\n"
        "          <edXML:PageAmount>2</edXML:PageAmount>\n"
        "        </edXML:OtherInfo>\n"
        "        <edXML:SteeringType>1</edXML:SteeringType>\n"
        "        <edXML:DocumentId>000.00.00.G22,2025/07/08,5123/VPCP-KGVX</edXML:DocumentId>\n"
        "      </edXML:MessageHeader>\n",
        ns, ns);
    put(&b,
        "      <edXML:TraceHeaderList>\n"
        "        <edXML:TraceHeader>\n"
        "          <edXML:OrganId>000.00.00.G22</edXML:OrganId>\n"
        "          <edXML:Timestamp>2025/07/08 09:12:40</edXML:Timestamp>\n"
        "        </edXML:TraceHeader>\n"
        "        <edXML:Bussiness>\n"
        "          <edXML:BussinessDocType>0</edXML:BussinessDocType>\n"
        "          <edXML:BussinessDocReason>Văn bản mới</edXML:BussinessDocReason>\n"
        "        </edXML:Bussiness>\n"
        "      </edXML:TraceHeaderList>\n"
        "      <Signature xmlns=\"http://www.w3.org/2000/09/xmldsig#\">\n"
        "        <SignedInfo>\n"
        "          <CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>\n"
        "          <SignatureMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#rsa-sha1\"/>\n"
        "          <Reference URI=\"\">\n"
        "            <DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"/>\n"
        "            <DigestValue>c2FtcGxlIGRpZ2VzdCwgbm90IHNpZ25lZA==</DigestValue>\n"
        "          </Reference>\n"
        "        </SignedInfo>\n"
        "        <SignatureValue>c2FtcGxlIHNpZ25hdHVyZSwgbm90IHNpZ25lZA==</SignatureValue>\n"
        "      </Signature>\n"
        "    </edXML:edXMLHeader>\n"
        "    <edXML:edXMLBody>\n"
        "      <edXML:edXMLManifest version=\"1.0\">\n"
        "        <edXML:Reference xlink:href=\"\">\n"
        "          <edXML:ContentId>cid:0b5e2c7a-5123-4f1e-9c2d-vpcpkgvx0001</edXML:ContentId>\n"
        "          <edXML:AttachmentName>5123-VPCP-KGVX.pdf</edXML:AttachmentName>\n"
        "          <edXML:Description>Công văn 5123/VPCP-KGVX</edXML:Description>\n"
        "        </edXML:Reference>\n"
        "        <edXML:Reference xlink:href=\"\">\n"
        "          <edXML:ContentId>cid:0b5e2c7a-5123-4f1e-9c2d-vpcpkgvx0002</edXML:ContentId>\n"
        "          <edXML:AttachmentName>Phu-luc-ma-don-vi.docx</edXML:AttachmentName>\n"
        "          <edXML:Description>Phụ lục mã đơn vị hành chính</edXML:Description>\n"
        "        </edXML:Reference>\n"
        "      </edXML:edXMLManifest>\n"
        "    </edXML:edXMLBody>\n"
        "  </edXML:edXMLEnvelope>\n");
    put(&b,
        "  <edXML:AttachmentEncoded>\n"
        "    <edXML:Attachment>\n"
        "      <edXML:ContentId>cid:0b5e2c7a-5123-4f1e-9c2d-vpcpkgvx0001</edXML:ContentId>\n"
        "      <edXML:AttachmentName>5123-VPCP-KGVX.pdf</edXML:AttachmentName>\n"
        "      <edXML:ContentType>application/pdf</edXML:ContentType>\n"
        "      <edXML:ContentTransferEncoded>JVBERi0xLjQKJeLjz9MKMSAwIG9iago8PC9UeXBlL0NhdGFsb2cvUGFnZXMgMiAwIFI+PgplbmRvYmoKMiAwIG9iago8PC9UeXBlL1BhZ2VzL0tpZHNbXS9Db3VudCAwPj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9GCg==</edXML:ContentTransferEncoded>\n"
        "    </edXML:Attachment>\n"
        "    <edXML:Attachment>\n"
        "      <edXML:ContentId>cid:0b5e2c7a-5123-4f1e-9c2d-vpcpkgvx0002</edXML:ContentId>\n"
        "      <edXML:AttachmentName>Phu-luc-ma-don-vi.docx</edXML:AttachmentName>\n"
        "      <edXML:ContentType>application/vnd.openxmlformats-officedocument.wordprocessingml.document</edXML:ContentType>\n"
        "      <edXML:ContentTransferEncoded>\n"
        "UEsDBBQAAAAIAHdvcmQvZG9jdW1lbnQueG1sPHc6ZG9jdW1lbnQ+PHc6Ym9keT48\n"
        "dzpwPjx3OnI+PHc6dD5QaOG7pSBs4bulYzwvdzp0PjwvdzpyPjwvdzpwPjwvdzpi\n"
        "b2R5Pjwvdzpkb2N1bWVudD5QSwUGAAAAAAAAAAAAAAAAAAAAAAAA\n"
        "      </edXML:ContentTransferEncoded>\n"
        "    </edXML:Attachment>\n"
        "  </edXML:AttachmentEncoded>\n"
        "</edXML>\n");
    write_encoded(dir, "edxml/5123-VPCP-KGVX.edxml", LT_CHARSET_UTF8, &b);
    free(b.p);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (DIR/edxml must exist)\n", argv[0]);
        return 2;
    }
    births(argv[1]);
    residence(argv[1]);
    businesses(argv[1]);
    edxml(argv[1]);
    edxml_prefixed(argv[1]);
    return 0;
}
