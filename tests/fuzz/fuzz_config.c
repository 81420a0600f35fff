/*
 * fuzz_config — libFuzzer target for the configuration parsers: config.yaml through libyaml
 * into cJSON (actors/config/hm_yaml.c) and .env files (hm_env.c).
 *
 * Byte 0 picks the parser; the rest is the file. Checked besides what ASan and UBSan catch:
 * a parse either gives a document or an error with a message and a line >= 0; every
 * duplicate key has a path and lines; the tree prints; every .env variable has a non-empty
 * key, a value and a statement span inside the text.
 */
#include "hm_env.h"
#include "hm_yaml.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        hm_env e;
        hm_env_init(&e);
        hm_env_parse(&e, text, len);
        for (size_t i = 0; i < e.n; i++)
            if (!e.v[i].key || !e.v[i].key[0] || !e.v[i].value || e.v[i].start > e.v[i].end ||
                e.v[i].end > len)
                abort();
        hm_env_fini(&e);
        return 0;
    }
    hm_yaml_err err = {0};
    hm_yaml_doc *d = hm_yaml_parse(text, len, &err);
    if (!d) {
        if (!err.msg[0] || err.line < 0)
            abort();
        return 0;
    }
    size_t n = 0;
    const hm_yaml_dup *dups = hm_yaml_dups(d, &n);
    for (size_t i = 0; i < n; i++)
        if (!dups[i].path || dups[i].line < 1 || dups[i].first_line < 1)
            abort();
    char *printed = cJSON_PrintUnformatted(hm_yaml_root(d));
    if (!printed)
        abort();
    cJSON_free(printed);
    hm_yaml_free(d);
    return 0;
}
