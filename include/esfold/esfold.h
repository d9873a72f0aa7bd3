/*
 * esfold.h - event sourcing and CQRS persistence for C.
 * Includes every public header. Include as <esfold/esfold.h>; link with `pkg-config --libs esfold`.
 */
#ifndef ESFOLD_H
#define ESFOLD_H

#include "version.h"
#include "error.h"
#include "time.h"
#include "partition.h"
#include "event.h"
#include "log.h"
#include "aggregate.h"
#include "upcast.h"
#include "accept.h"
#include "repo.h"
#include "processor.h"
#include "snapshot.h"
#include "projection.h"
#include "rebuild.h"
#include "status.h"
#include "cli.h"

#endif
