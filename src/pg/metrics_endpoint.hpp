// engram's metrics endpoint: an optional background worker serving the
// Prometheus exposition over HTTP (see metrics_endpoint.cpp).
#pragma once

#include "pg/postgres.hpp"

// Registers the endpoint's worker when engram.metrics_address is set.
void metrics_endpoint_register(void);

// engram.metrics_address's check: "" or a "host:port" the endpoint can bind.
bool metrics_address_check(char **value, void **extra, GucSource source);
