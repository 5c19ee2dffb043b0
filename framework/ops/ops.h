// Everything a model needs from the ops layer, in one include.
#pragma once
#include "framework/ops/backward.h"
#include "framework/ops/elementwise.h"
#include "framework/ops/linalg.h"
#include "framework/ops/random.h"
#include "framework/ops/reduce.h"
#include "framework/ops/view.h"
