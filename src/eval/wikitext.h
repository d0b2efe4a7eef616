/* WikiText-2 as lm-evaluation-harness sees it (task `wikitext`, 0.4.13):
 *
 * - documents: EleutherAI/wikitext_document_level splits wiki.*.raw on
 *   "\n"; a line is a level-1 heading when, after replacing "= = =" by
 *   "===" and then "= =" by "==" and stripping, it starts with "= " and
 *   ends with " ="; each heading starts a new page ("\n".join of its
 *   lines); a page that strips to nothing is dropped, except the last.
 *   Pages are therefore byte ranges of the raw file.
 * - preprocess_wikitext.wikitext_detokenizer: string replacements and
 *   five bracket/quote regexes (PCRE2 with UTF + UCP for Python's \s).
 * - words: len(re.split(r"\s+", page)), i.e. whitespace runs + 1, with
 *   Python's Unicode whitespace (str.isspace).
 */
#ifndef SLM_EVAL_WIKITEXT_H
#define SLM_EVAL_WIKITEXT_H

#include "slimlm.h"

typedef struct slm_wikitext_page {
    size_t off, len; /* byte range in the raw text */
} slm_wikitext_page;

/* Splits raw into pages; *pages is malloc'd. */
slm_status slm_wikitext_split_pages(const char *raw, size_t len, slm_wikitext_page **pages, int *n_pages);

/* lm-eval's wikitext_detokenizer. *out is malloc'd and NUL-terminated.
 * name is used in error messages. */
slm_status slm_wikitext_detokenize(const char *page, size_t len, const char *name, char **out, size_t *out_len);

/* len(re.split(r"\s+", s)) for UTF-8 s (Python str semantics). */
int64_t slm_wikitext_count_words(const char *s, size_t len);

#endif
