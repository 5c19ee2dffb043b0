// Everything a trainer needs from the optimizer layer, in one include.
#pragma once
#include "framework/optim/adamw.h"
#include "framework/optim/clip.h"
#include "framework/optim/schedule.h"
