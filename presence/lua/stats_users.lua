-- Presence stats with user mapping (SERVER.md §3.8): in index mode drop expired clients
-- and expired users from both hashes first (in hash-field-TTL mode Redis already did), then
-- answer {clients, users} from the hash lengths, without reading the entries.
-- KEYS[1] expiry index zset, KEYS[2] data hash, KEYS[3] user expiry zset, KEYS[4] user hash.
-- ARGV[1] now (Unix s), ARGV[2] hash-field TTL "0"|"1".
local function drop_expired(index, hash)
    local expired = redis.call("zrangebyscore", index, "0", ARGV[1])
    if #expired > 0 then
        -- unpack() is bounded by the Lua C stack, so delete in chunks.
        local chunk = 1000
        for i = 1, #expired, chunk do
            redis.call("hdel", hash, unpack(expired, i, math.min(i + chunk - 1, #expired)))
        end
        redis.call("zremrangebyscore", index, "0", ARGV[1])
    end
end
if ARGV[2] ~= "1" then
    drop_expired(KEYS[1], KEYS[2])
    drop_expired(KEYS[3], KEYS[4])
end
return {redis.call("hlen", KEYS[2]), redis.call("hlen", KEYS[4])}
