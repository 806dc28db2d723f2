// The engram writer: the background worker that writes the spaces' graph
// files (see writer.cpp).
#pragma once

void writer_register(void);
