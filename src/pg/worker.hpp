// The engram worker pool (see worker.cpp).
#pragma once

void worker_register_pool(void);
