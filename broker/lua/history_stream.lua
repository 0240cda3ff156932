-- History read (SERVER.md §3.6). KEYS: stream, meta.
-- ARGV: include_pubs "0"|"1", start_offset, limit ("0" = no COUNT), reverse "0"|"1",
-- meta_ttl_s ("0" = no expiry), new_epoch, history_size ("0" = no window).
-- Returns {top, epoch, entries}; entries (absent without include_pubs) as XRANGE gives them.
--
-- history_size (a rotor addition) bounds the read to the newest history_size offsets, so a
-- namespace whose history_size shrank reads the same window as the memory broker keeps,
-- before the next XADD trims the stream.
local stream_key = KEYS[1]
local meta_key = KEYS[2]
local include_pubs = ARGV[1]
local start = ARGV[2]
local limit = ARGV[3]
local reverse = ARGV[4]
local meta_ttl = ARGV[5]
local new_epoch = ARGV[6]
local history_size = tonumber(ARGV[7])

local meta = redis.call("hmget", meta_key, "e", "s")
local epoch, top = meta[1], meta[2]
if not epoch then
  epoch = new_epoch
  top = 0
  redis.call("hset", meta_key, "e", epoch)
end
if not top then
  top = 0
end
if meta_ttl ~= "0" then
  redis.call("expire", meta_key, meta_ttl)
end

if include_pubs == "0" then
  return {top, epoch}
end

local top_n = tonumber(top)
local low = "-"
if history_size > 0 and top_n > history_size then
  low = string.format("%d", top_n - history_size + 1)
end

local pubs
if reverse == "0" then
  if low ~= "-" and tonumber(start) < tonumber(low) then
    start = low
  end
  if limit ~= "0" then
    pubs = redis.call("xrange", stream_key, start, "+", "COUNT", limit)
  else
    pubs = redis.call("xrange", stream_key, start, "+")
  end
else
  if start == "0" then
    start = string.format("%d", top_n)
  end
  if low ~= "-" and tonumber(start) < tonumber(low) then
    return {top, epoch, {}}
  end
  if limit ~= "0" then
    pubs = redis.call("xrevrange", stream_key, start, low, "COUNT", limit)
  else
    pubs = redis.call("xrevrange", stream_key, start, low)
  end
end
return {top, epoch, pubs}
