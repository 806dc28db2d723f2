// The installation a backend talks to, and the checks that keep it from
// reading or writing another installation's shared state (see
// core/instance_id.hpp): engram serves one database, and within it the one
// installation the workers have loaded.
#pragma once

#include "core/instance_id.hpp"

// This backend's installation: its database and its table engram.observations
// (relation 0 when the table does not exist).
engram::core::InstanceId instance_of_caller(void);
// The installation the shared directory belongs to.
engram::core::InstanceId instance_shared(void);
// Raises 55000 unless this backend's database is the one engram.database names.
void instance_require_database(void);
// Waits (briefly) until the shared state belongs to the caller's installation,
// as it does within a second of CREATE EXTENSION; raises 55000 if it does not.
void instance_require(void);
// instance_require(), then waits (interruptibly) until the workers have
// loaded the installation's spaces: until then the directory is being
// rebuilt, and a mark put on a slot (a drop) could be lost with it.
void instance_require_loaded(void);
