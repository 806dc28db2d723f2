// Statements prepared once per backend (see kept_plan.hpp).
#include "pg/kept_plan.hpp"

SPIPlanPtr
kept_plan(SPIPlanPtr &plan, const char *sql, int nargs, Oid *types)
{
	if (plan != nullptr)
		return plan;
	SPIPlanPtr prepared = SPI_prepare(sql, nargs, types);
	if (prepared == nullptr || SPI_keepplan(prepared) != 0)
		elog(ERROR, "could not prepare \"%s\"", sql);
	plan = prepared;
	return plan;
}
