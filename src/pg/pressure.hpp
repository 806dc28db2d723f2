// The pipeline's pressure right now, from shared counters and the settings,
// for the whole pipeline and for one space; admission of a transaction's rows
// by the fair-share rule (core/pressure.hpp); and the workers' side of the
// spaces' backlog (core/space_backlog.hpp).
#pragma once

#include <cstdint>
#include <span>

#include "core/pressure.hpp"
#include "core/ring.hpp"
#include "core/space_backlog.hpp"

// The whole pipeline (engram.pressure()), measured in the graphs now.
engram::core::PressureReport pressure_now(void);

// What a commit into the space meets (engram.pressure(space)), and the
// space's rows accepted but not linked yet.
struct SpacePressure {
	engram::core::PressureReport report;
	std::uint64_t pending;
};
SpacePressure space_pressure_now(std::int32_t space_id);

// Admits a transaction's rows if no space it writes to is over its share
// (see SpaceBacklog::admit); reads only counters, never walks the spaces.
engram::core::AdmitVerdict pressure_admit(std::span<const engram::core::BacklogDemand> demands);
void pressure_withdraw(std::span<const engram::core::BacklogDemand> demands);
// The report a refused transaction's error shows, for the space that held it back.
engram::core::PressureReport pressure_refusal_report(const engram::core::AdmitVerdict &verdict);

// Vectors stored in a graph but not linked yet, over every space, and the
// ring bytes their records took.
struct UnlinkedVectors {
	std::uint64_t count;
	std::uint64_t ring_bytes;
};
UnlinkedVectors unlinked_vectors(void);

// Workers, holding the ring's consumer token: a record is about to be
// popped, `stored` of its rows were appended (store_record's result).
void backlog_record_consumed(const engram::core::RecordView &record, std::int64_t stored);
// Workers, holding the token: measures every space's unlinked rows for the
// backlog when the last census is older than a few tens of milliseconds.
void backlog_census_if_due(void);
