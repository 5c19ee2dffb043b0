// Everything the trainer needs from the distributed layer, in one include.
#pragma once
#include "framework/dist/communicator.h"
#include "framework/dist/consistency.h"
#include "framework/dist/grad_reducer.h"
#include "framework/dist/grid.h"
#include "framework/dist/nccl.h"
#include "framework/dist/runtime.h"
#include "framework/dist/tp.h"
#include "framework/dist/vocab_parallel.h"
#include "framework/dist/zero.h"
