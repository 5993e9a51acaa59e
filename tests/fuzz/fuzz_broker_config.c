/* fuzz_broker_config.c - broker.yaml bytes -> lt_broker_config_parse (from memory), then
 * the ACL built from whatever was accepted (peers and their relay patterns included), and
 * as a SIGHUP builds it. Any input: a config or a refusal with a
 * reason, never a crash or a leak. */
#include "broker_config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lt_broker_cfg *cfg = NULL;
    lt_why why;
    lt_err err = lt_broker_config_parse("fuzz/broker.yaml", (const char *)data, size, &cfg,
                                        &why);
    if (err != LT_OK) {
        /* a refusal always says why */
        if (cfg != NULL || why.msg[0] == '\0' || strnlen(why.msg, LT_WHY_MAX) == LT_WHY_MAX)
            __builtin_trap();
        return 0;
    }
    lt_acl *acl = NULL;
    if (lt_broker_config_acl(cfg, &acl, &why) == LT_OK) {
        for (size_t i = 0; i < cfg->nacl; i++)
            (void)lt_acl_check_publish(acl, cfg->acl[i].agency, "79.760.hotich", &why);
        for (size_t i = 0; i < cfg->nqueues; i++)
            if (lt_acl_check_consume(acl, cfg->queues[i].owner, cfg->queues[i].name, &why))
                __builtin_trap(); /* the owner of a configured queue may consume it */
        for (size_t i = 0; i < cfg->npeers; i++) /* a configured peer is a peer */
            if (!lt_acl_peer_name(acl, cfg->peers[i].agency) ||
                lt_acl_check_relay(acl, cfg->peers[i].agency, "79.760.hotich", &why) ==
                    LT_ENOT_PEER)
                __builtin_trap();
        lt_acl_destroy(&acl);
    }
    /* a SIGHUP reading the same file again builds the same ACL */
    if (lt_broker_config_acl_next(cfg, cfg, &acl, &why) == LT_OK)
        lt_acl_destroy(&acl);
    lt_broker_config_destroy(&cfg);
    return 0;
}
