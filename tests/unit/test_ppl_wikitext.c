/* lm-eval's view of WikiText-2 without a model: the document split, the
 * detokeniser and the word/byte counts, checked against Python running
 * lm_eval 0.4.13's own code (tools/make_ppl_golden.py wrote the per-document
 * counts and CRC-32s of the detokenised text; the small cases below are
 * Python's outputs for the same inputs). */
#include "eval/wikitext.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void check_detok(const char *in, const char *want) {
    char *out = NULL;
    size_t n = 0;
    CHECK(slm_wikitext_detokenize(in, strlen(in), "case", &out, &n) == 0, "detokenize '%s'", in);
    CHECK(out && strcmp(out, want) == 0 && n == strlen(want), "detokenize '%s' -> '%s' (want '%s')", in,
          out ? out : "(null)", want);
    free(out);
}

int main(void) {
    /* Python re.sub / str.replace results (see the file comment). */
    check_detok("He said \" hello world \" , ok", "He said \"hello world\", ok");
    check_detok("a ( b c ) d [ e ] { f } 'g ' h", "a (b c) d [e] {f} 'g' h");
    check_detok("1 @,@ 000 @.@ 5 km @-@ long", "1,000.5 km-long");
    check_detok("= = Heading = = \n Text \n", "== Heading ==\nText\n");
    check_detok("it 's the players ' ball", "it's the players' ball");
    check_detok("5 \xc2\xb0 C N N a", "5\xc2\xb0""C 1 N a");
    /* len(re.split(r"\s+", s)) */
    CHECK(slm_wikitext_count_words("", 0) == 1, "words('')");
    CHECK(slm_wikitext_count_words(" a  b ", 6) == 4, "words(' a  b ')");
    CHECK(slm_wikitext_count_words("a\xc2\xa0" "b", 4) == 2, "words with U+00A0");
    CHECK(slm_wikitext_count_words("a\xe3\x80\x80 b\n", 7) == 3, "words with U+3000");

    const char *data = slm_test_env("SLM_DATA_DIR", "../shared/data");
    const char *golden = slm_test_env("SLM_GOLDEN_DIR", "tests/golden");
    size_t rlen = 0, glen = 0;
    char *raw = slm_test_read_file(slm_test_path(data, "wikitext-2-raw/wiki.test.raw"), &rlen);
    char *gtext = slm_test_read_file(slm_test_path(golden, "ppl_lmeval_docstats.json"), &glen);
    if (!CHECK(raw && gtext, "need wiki.test.raw and ppl_lmeval_docstats.json")) return slm_test_finish();
    cJSON *g = cJSON_Parse(gtext);
    cJSON *gdocs = cJSON_GetObjectItem(g, "documents");
    slm_wikitext_page *pages = NULL;
    int n_pages = 0;
    CHECK(slm_wikitext_split_pages(raw, rlen, &pages, &n_pages) == 0, "split");
    int n_gold = cJSON_GetArraySize(gdocs);
    printf("documents: %d (golden %d)\n", n_pages, n_gold);
    CHECK(n_pages == n_gold, "document count %d vs golden %d", n_pages, n_gold);
    int bad_words = 0, bad_bytes = 0, bad_text = 0;
    int64_t words = 0, bytes = 0;
    for (int i = 0; i < n_pages && i < n_gold; i++) {
        cJSON *d = cJSON_GetArrayItem(gdocs, i);
        const char *page = raw + pages[i].off;
        int64_t w = slm_wikitext_count_words(page, pages[i].len);
        words += w;
        bytes += (int64_t)pages[i].len;
        if (w != (int64_t)cJSON_GetObjectItem(d, "words")->valuedouble) bad_words++;
        if ((int64_t)pages[i].len != (int64_t)cJSON_GetObjectItem(d, "bytes")->valuedouble) bad_bytes++;
        char *text = NULL;
        size_t tlen = 0;
        if (slm_wikitext_detokenize(page, pages[i].len, "wiki.test.raw", &text, &tlen)) { bad_text++; continue; }
        uLong crc = crc32(0L, (const Bytef *)text, (uInt)tlen);
        if (tlen != (size_t)cJSON_GetObjectItem(d, "text_bytes")->valuedouble ||
            crc != (uLong)cJSON_GetObjectItem(d, "text_crc32")->valuedouble) {
            bad_text++;
            fprintf(stderr, "doc %d: detokenized %zu bytes crc %08lx, golden %.0f bytes crc %08lx\n", i, tlen, crc,
                    cJSON_GetObjectItem(d, "text_bytes")->valuedouble,
                    (unsigned long)cJSON_GetObjectItem(d, "text_crc32")->valuedouble);
        }
        free(text);
    }
    printf("words %lld, bytes %lld; mismatched documents: words %d, bytes %d, detokenized text %d\n",
           (long long)words, (long long)bytes, bad_words, bad_bytes, bad_text);
    CHECK(bad_words == 0 && bad_bytes == 0 && bad_text == 0, "every document matches lm-eval's");
    free(pages);
    cJSON_Delete(g);
    free(gtext);
    free(raw);
    return slm_test_finish();
}
