/*
 * weft: asyncio's programming model for C, on all cores.
 *
 * The umbrella header: include this one. See docs/api.md for the reference
 * and docs/asyncio.md for the asyncio -> weft table.
 */
#ifndef WEFT_H
#define WEFT_H

#include "weft/common.h"
#include "weft/alloc.h"
#include "weft/version.h"
#include "weft/error.h"
#include "weft/task.h"
#include "weft/runtime.h"
#include "weft/metrics.h"
#include "weft/debug.h"
#include "weft/queue.h"
#include "weft/timeout.h"
#include "weft/taskgroup.h"
#include "weft/waitset.h"
#include "weft/sync.h"
#include "weft/stream.h"
#include "weft/tls.h"
#include "weft/offload.h"
#include "weft/file.h"
#include "weft/foreign.h"
#include "weft/signal.h"
#include "weft/process.h"
#include "weft/udp.h"
#include "weft/dump.h"

#endif /* WEFT_H */
