"""The Lua scripts of the Redis storage, one per atomic step.

Each runs on the server in one EVALSHA, so its commands happen together with nothing in
between. Key names come in as KEYS and everything else as ARGV. Queue and schedule
members are an 8-byte big-endian sequence number followed by the message, so members with
equal scores sort first-in first-out. Scripts that need the time read the server's clock
(``TIME``), which is the one Redis expires keys by.
"""

SERVER_NOW_MS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""

# KEYS queue, seq, wake. ARGV wake cap, then (score, message) pairs.
ENQUEUE = """
local n = (#ARGV - 1) / 2
local first = redis.call('INCRBY', KEYS[2], n) - n
for i = 1, n do
  redis.call('ZADD', KEYS[1], ARGV[2 * i], struct.pack('>I8', first + i) .. ARGV[2 * i + 1])
end
local cap = tonumber(ARGV[1])
local tokens = {}
for i = 1, math.min(n, cap) do tokens[i] = '1' end
redis.call('RPUSH', KEYS[3], unpack(tokens))
redis.call('LTRIM', KEYS[3], 0, cap - 1)
return n
"""

# KEYS queue, inflight, owners, leases, counter ('' = none).
# ARGV token, owner, lease_until, token to release first ('' = none).
# Returns false, or {message, counter value}.
CLAIM = """
if ARGV[4] ~= '' then
  redis.call('HDEL', KEYS[2], ARGV[4])
  redis.call('HDEL', KEYS[3], ARGV[4])
  redis.call('ZREM', KEYS[4], ARGV[4])
end
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then return false end
local data = string.sub(popped[1], 9)
redis.call('HSET', KEYS[2], ARGV[1], data)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
local counter = false
if KEYS[5] ~= '' then counter = redis.call('GET', KEYS[5]) or '0' end
return {data, counter}
"""

# KEYS queue. The first message, or false.
DEQUEUE = """
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then return false end
return string.sub(popped[1], 9)
"""

# KEYS schedule, seq. ARGV ts, message.
SCHEDULE = """
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], ARGV[1], struct.pack('>I8', seq) .. ARGV[2])
"""

# KEYS schedule. ARGV ts.
READ_SCHEDULE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #due > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) end
return due
"""

# KEYS value key, results index, waiter count, notify list.
# ARGV key, value, ttl ms ('' = none), '1' = NX.
# Wakes every reader registered by WAIT (one token each on the notify list).
PUT = SERVER_NOW_MS + """
local ttl = tonumber(ARGV[3])
local set = {'SET', KEYS[1], ARGV[2]}
if ttl then set[#set + 1] = 'PX'; set[#set + 1] = ARGV[3] end
if ARGV[4] == '1' then set[#set + 1] = 'NX' end
if not redis.call(unpack(set)) then return 0 end
redis.call('ZADD', KEYS[2], ttl and (now + ttl) or '+inf', ARGV[1])
if ttl then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now) end
local waiting = tonumber(redis.call('GET', KEYS[3]) or '0')
if waiting > 0 then
  for i = 1, waiting do redis.call('RPUSH', KEYS[4], '1') end
  redis.call('PEXPIRE', KEYS[4], 60000)
  redis.call('DEL', KEYS[3])
end
return 1
"""

# KEYS value key, waiter count. ARGV registration ttl ms.
# 1 when the value is there; else registers one waiter for PUT to wake, and 0.
WAIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 0
"""

# KEYS value key, results index. ARGV key.
POP = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return value
"""

# KEYS results index.
RESULT_COUNT = SERVER_NOW_MS + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""

# KEYS results index. ARGV value key prefix.
RESULT_ITEMS = SERVER_NOW_MS + """
local out = {}
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local value = redis.call('GET', ARGV[1] .. key)
  if value then out[#out + 1] = key; out[#out + 1] = value end
end
return out
"""

# KEYS counter. ARGV amount, ttl ms ('' = none).
INCR = """
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""

# KEYS owners, leases. ARGV owner, lease_until.
RENEW = """
local owners = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #owners, 2 do
  if owners[i + 1] == ARGV[1] then
    redis.call('ZADD', KEYS[2], 'XX', ARGV[2], owners[i])
    n = n + 1
  end
end
return n
"""

# KEYS inflight, owners, leases. ARGV token.
RELEASE = """
local found = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return found
"""

# KEYS inflight, owners, leases. ARGV upper lease bound ('+inf' or '(<now>').
LIST_IN_FLIGHT = """
local leases = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'WITHSCORES')
local out = {}
for i = 1, #leases, 2 do
  local data = redis.call('HGET', KEYS[1], leases[i])
  if data then
    local owner = redis.call('HGET', KEYS[2], leases[i]) or ''
    for _, v in ipairs({leases[i], owner, leases[i + 1], data}) do out[#out + 1] = v end
  end
end
return out
"""

# Appends one message to the queue as ENQUEUE does (seq, member, wake-up token).
# Defines push(queue, seq, wake, score, message, wake cap).
PUSH = """
local function push(queue, seq, wake, score, message, cap)
  local n = redis.call('INCR', seq)
  redis.call('ZADD', queue, score, struct.pack('>I8', n) .. message)
  redis.call('RPUSH', wake, '1')
  redis.call('LTRIM', wake, 0, tonumber(cap) - 1)
end
"""

# KEYS schedule, queue, seq, wake. ARGV schedule member, message ('' = drop only),
# score, wake cap. 1 when the member was moved, 0 when it was already gone.
MOVE_TO_QUEUE = PUSH + """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] ~= '' then push(KEYS[2], KEYS[3], KEYS[4], ARGV[3], ARGV[2], ARGV[4]) end
return 1
"""

# KEYS inflight, owners, leases. ARGV token, expected owner, owner, lease_until.
# {owner, lease, message} as adopted, or false.
ADOPT = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return false end
local data = redis.call('HGET', KEYS[1], ARGV[1])
if not data then return false end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return {ARGV[3], ARGV[4], data}
"""

# KEYS inflight, owners, leases, queue, seq, wake. ARGV token, message, score, wake cap.
REQUEUE_IN_FLIGHT = PUSH + """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
push(KEYS[4], KEYS[5], KEYS[6], ARGV[3], ARGV[2], ARGV[4])
return 1
"""
