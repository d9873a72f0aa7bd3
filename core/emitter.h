/*
 * core/emitter.h - the emitter a decide function fills (es_emit_new,
 * es_refuse), shared by the repository (core/repo.c) and the processor
 * (core/processor.c). Internal: not installed, not API.
 */
#ifndef ESFOLD_CORE_EMITTER_H
#define ESFOLD_CORE_EMITTER_H

#include "esfold/repo.h"

struct es_emitter {
    es_event *events; /* type and payload owned */
    size_t n, cap;
    char *refusal;
    int oom;
};

/* Frees what the emitter collected and makes it empty (events array kept). */
void es__emitter_reset(es_emitter *em);

#endif
