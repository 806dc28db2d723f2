// Capture and publication of observations (see capture.cpp).
#pragma once

#include <cstdint>

void capture_register_callbacks(void);

// Generation of this backend's last commit that published observations
// (0 if none): a recall in this session must see at least this generation.
std::uint64_t capture_last_generation(void);

// drop_space: allows deleting this space's rows in the current transaction.
void capture_allow_delete(std::int32_t space_id);
bool capture_delete_allowed(std::int32_t space_id);
