// The wall between the pure C++ core and PostgreSQL. Every core header
// includes this one last: if a translation unit pulls in postgres.h before a
// core header, the build fails here instead of silently mixing the two worlds
// (PostgreSQL's macros redefine names such as `Max`, `gettext` and `printf`).
#pragma once

#ifdef POSTGRES_H
#error "src/core must not be compiled with PostgreSQL headers; include core headers before postgres.h"
#endif
