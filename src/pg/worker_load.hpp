// Filling graphs from engram.observations, the source of truth: every space
// after a server start or crash restart, and one space's replacement graph
// for engram.rebuild(). Main thread of a worker holding the consumer token.
#pragma once

#include "pg/shared.hpp"

// Loads every space from the table (start-up). Sets load_filter.
void load_spaces(int worker_index);

// Starts the rebuilds that were asked for: fills a replacement graph of each
// from the table and publishes it, so drains append to it and the link pool
// links it, while recalls keep using the current graph. Sets load_filter.
void start_rebuilds(void);

// Makes each replacement graph whose nodes are all linked the current one and
// destroys the graph it replaces.
void finish_rebuilds(void);
