-- state.db as the first release of the original's store created it (hermes_state.py,
-- SCHEMA_VERSION = 1: messages has no finish_reason column). Opening it must migrate it to
-- version 2 exactly as the original does (ALTER TABLE messages ADD COLUMN finish_reason TEXT).
PRAGMA journal_mode=WAL;
PRAGMA foreign_keys=ON;
-- BEGIN SCHEMA_SQL
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    user_id TEXT,
    model TEXT,
    model_config TEXT,
    system_prompt TEXT,
    parent_session_id TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    end_reason TEXT,
    message_count INTEGER DEFAULT 0,
    tool_call_count INTEGER DEFAULT 0,
    input_tokens INTEGER DEFAULT 0,
    output_tokens INTEGER DEFAULT 0,
    FOREIGN KEY (parent_session_id) REFERENCES sessions(id)
);

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL,
    content TEXT,
    tool_call_id TEXT,
    tool_calls TEXT,
    tool_name TEXT,
    timestamp REAL NOT NULL,
    token_count INTEGER
);

CREATE INDEX IF NOT EXISTS idx_sessions_source ON sessions(source);
CREATE INDEX IF NOT EXISTS idx_sessions_parent ON sessions(parent_session_id);
CREATE INDEX IF NOT EXISTS idx_sessions_started ON sessions(started_at DESC);
CREATE INDEX IF NOT EXISTS idx_messages_session ON messages(session_id, timestamp);
-- END SCHEMA_SQL
INSERT INTO schema_version (version) VALUES (1);
-- BEGIN FTS_SQL
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    content,
    content=messages,
    content_rowid=id
);

CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;

CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES('delete', old.id, old.content);
END;

CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
-- END FTS_SQL
-- Rows as the original's create_session / append_message write them (one INSERT each,
-- then the counter UPDATE), with Unix epoch float times.
INSERT INTO sessions (id, source, user_id, model, model_config,
   system_prompt, parent_session_id, started_at)
   VALUES ('20260301_101500_a1b2c3', 'cli', NULL, 'anthropic/claude-opus-4', '{"max_iterations": 60}', 'You are Hermes, a helpful agent.', NULL, 1772360100.125);
INSERT INTO messages (session_id, role, content, tool_call_id,
   tool_calls, tool_name, timestamp, token_count)
   VALUES ('20260301_101500_a1b2c3', 'user', 'How do I deploy the docker container on kubernetes?', NULL, NULL, NULL, 1772360101.5, NULL);
UPDATE sessions SET message_count = message_count + 1 WHERE id = '20260301_101500_a1b2c3';
INSERT INTO messages (session_id, role, content, tool_call_id,
   tool_calls, tool_name, timestamp, token_count)
   VALUES ('20260301_101500_a1b2c3', 'assistant', 'Let me check the running containers first.', NULL, '[{"id": "call_1", "type": "function", "function": {"name": "terminal", "arguments": "{\"command\": \"docker ps\"}"}}]', NULL, 1772360103.25, NULL);
UPDATE sessions SET message_count = message_count + 1,
   tool_call_count = tool_call_count + 1 WHERE id = '20260301_101500_a1b2c3';
INSERT INTO messages (session_id, role, content, tool_call_id,
   tool_calls, tool_name, timestamp, token_count)
   VALUES ('20260301_101500_a1b2c3', 'tool', 'CONTAINER ID   IMAGE   STATUS
3f2a   nginx   Up 2 hours', 'call_1', NULL, 'terminal', 1772360104.0, NULL);
UPDATE sessions SET message_count = message_count + 1,
   tool_call_count = tool_call_count + 1 WHERE id = '20260301_101500_a1b2c3';
INSERT INTO messages (session_id, role, content, tool_call_id,
   tool_calls, tool_name, timestamp, token_count)
   VALUES ('20260301_101500_a1b2c3', 'assistant', 'The nginx container is running; apply the kubernetes deployment with kubectl apply.', NULL, NULL, NULL, 1772360106.75, NULL);
UPDATE sessions SET message_count = message_count + 1 WHERE id = '20260301_101500_a1b2c3';
INSERT INTO sessions (id, source, user_id, model, model_config,
   system_prompt, parent_session_id, started_at)
   VALUES ('20260301_120000_d4e5f6', 'telegram', NULL, 'anthropic/claude-opus-4', NULL, NULL, NULL, 1772366400.0);
INSERT INTO messages (session_id, role, content, tool_call_id,
   tool_calls, tool_name, timestamp, token_count)
   VALUES ('20260301_120000_d4e5f6', 'user', 'Remind me about the dentist appointment on Friday', NULL, NULL, NULL, 1772366401.0, NULL);
UPDATE sessions SET message_count = message_count + 1 WHERE id = '20260301_120000_d4e5f6';
INSERT INTO messages (session_id, role, content, tool_call_id,
   tool_calls, tool_name, timestamp, token_count)
   VALUES ('20260301_120000_d4e5f6', 'assistant', 'Noted: dentist appointment on Friday at 9am.', NULL, NULL, NULL, 1772366402.5, NULL);
UPDATE sessions SET message_count = message_count + 1 WHERE id = '20260301_120000_d4e5f6';
UPDATE sessions SET input_tokens = input_tokens + 1200,
   output_tokens = output_tokens + 85 WHERE id = '20260301_120000_d4e5f6';
UPDATE sessions SET ended_at = 1772366500.0, end_reason = 'compression' WHERE id = '20260301_120000_d4e5f6';
INSERT INTO sessions (id, source, user_id, model, model_config,
   system_prompt, parent_session_id, started_at)
   VALUES ('20260301_120140_0a0b0c', 'telegram', NULL, 'anthropic/claude-opus-4', NULL, NULL, '20260301_120000_d4e5f6', 1772366500.5);
INSERT INTO messages (session_id, role, content, tool_call_id,
   tool_calls, tool_name, timestamp, token_count)
   VALUES ('20260301_120140_0a0b0c', 'user', 'And the docker registry password reset?', NULL, NULL, NULL, 1772366510.0, NULL);
UPDATE sessions SET message_count = message_count + 1 WHERE id = '20260301_120140_0a0b0c';
