// The engram worker pool (see worker.cpp).
#pragma once

// Registers one of engram's background workers (connected to
// engram.database, started once recovery is over, restarted a second after
// it exits with an error): `function` is its entry point in the library.
void worker_register(const char *function, const char *name, const char *type, int arg);
void worker_register_pool(void);
