/*
 * samples/minimal/counter.h - the smallest esfold program: counters that
 * only go up. One aggregate type ("counter"), one event (Added {"n": 5}),
 * one command (`minimal add ID N`), and every esfold operations command.
 */
#ifndef ESFOLD_SAMPLES_MINIMAL_COUNTER_H
#define ESFOLD_SAMPLES_MINIMAL_COUNTER_H

#include "esfold/esfold.h"

extern const es_aggregate_type counter_type;
extern const es_app counter_app; /* what main hands to es_cli_main */

#endif
