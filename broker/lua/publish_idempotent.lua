-- Publish without history but with an idempotency key (SERVER.md §3.5 A).
-- KEYS: result. ARGV: pubsub_channel, pub, result_ttl_s, "publish"|"spublish".
-- Returns 1 for a duplicate (nothing published), 0 otherwise.
if redis.call("hexists", KEYS[1], "e") == 1 then
  return 1
end
redis.call(ARGV[4], ARGV[1], ARGV[2])
redis.call("hset", KEYS[1], "e", "")
redis.call("expire", KEYS[1], ARGV[3])
return 0
