// The space table answers exactly like a reference map through any sequence
// of inserts and erases, full tables and probe runs that wrap around the end.
#include "core/space_table.hpp"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>
#include <vector>

namespace engram::core {
namespace {

TEST(SpaceTable, SizesArePowersOfTwoWithRoom)
{
	EXPECT_EQ(SpaceTable::buckets_for(0), 4u);
	EXPECT_EQ(SpaceTable::buckets_for(50), 128u);
	EXPECT_EQ(SpaceTable::buckets_for(64), 128u);
	EXPECT_EQ(SpaceTable::buckets_for(10000), 32768u);
}

TEST(SpaceTable, FindsInsertsAndErases)
{
	std::vector<SpaceTableBucket> buckets(SpaceTable::buckets_for(8));
	SpaceTable::clear(buckets);
	SpaceTable table(buckets);
	EXPECT_EQ(table.find(1), 0);
	EXPECT_TRUE(table.insert(1, 10));
	EXPECT_FALSE(table.insert(1, 11)) << "a key is stored once";
	EXPECT_TRUE(table.insert(-5, 7)) << "any int32 is a key";
	EXPECT_EQ(table.find(1), 10);
	EXPECT_EQ(table.find(-5), 7);
	EXPECT_TRUE(table.erase(1));
	EXPECT_FALSE(table.erase(1));
	EXPECT_EQ(table.find(1), 0);
	EXPECT_EQ(table.find(-5), 7);
}

TEST(SpaceTable, FullTableRefusesAndStillFinds)
{
	std::vector<SpaceTableBucket> buckets(4);
	SpaceTable::clear(buckets);
	SpaceTable table(buckets);
	for (int key = 0; key < 4; ++key)
		EXPECT_TRUE(table.insert(key * 1000, key + 1));
	EXPECT_FALSE(table.insert(99, 1));
	EXPECT_EQ(table.find(99), 0) << "a miss in a full table ends";
	for (int key = 0; key < 4; ++key)
		EXPECT_EQ(table.find(key * 1000), key + 1);
	EXPECT_TRUE(table.erase(2000));
	EXPECT_TRUE(table.insert(99, 5));
	EXPECT_EQ(table.find(99), 5);
}

// Random operations at high load against std::unordered_map: every erase
// must leave every other key reachable (the backward shift), also in a
// table filled to its last bucket.
TEST(SpaceTable, MatchesAReferenceMap)
{
	for (const std::size_t entries : {3u, 8u, 17u, 200u}) {
		std::vector<SpaceTableBucket> buckets(entries == 8 ? 8 : SpaceTable::buckets_for(entries));
		SpaceTable::clear(buckets);
		SpaceTable table(buckets);
		std::unordered_map<std::int32_t, std::int32_t> reference;
		std::mt19937 random(static_cast<unsigned>(entries));
		std::uniform_int_distribution<std::int32_t> keys(1, static_cast<std::int32_t>(entries * 3));
		for (int step = 0; step < 200000; ++step) {
			const std::int32_t key = keys(random);
			if (reference.size() < entries && random() % 2 == 0) {
				const bool fresh = !reference.contains(key);
				ASSERT_EQ(table.insert(key, step + 1), fresh);
				if (fresh)
					reference[key] = step + 1;
			} else {
				ASSERT_EQ(table.erase(key), reference.erase(key) == 1);
			}
			if (step % 97 == 0)
				for (std::int32_t k = 1; k <= static_cast<std::int32_t>(entries * 3); ++k) {
					const auto it = reference.find(k);
					ASSERT_EQ(table.find(k), it == reference.end() ? 0 : it->second) << "key " << k;
				}
		}
	}
}

} // namespace
} // namespace engram::core
