// The pipeline's pressure right now, from shared counters and the settings.
#pragma once

#include "core/pressure.hpp"

engram::core::PressureReport pressure_now(void);
