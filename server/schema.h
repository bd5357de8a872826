#pragma once
// The store's schema as an ordered list of migrations: kMigrations[i] takes
// the database from version i to i+1. Never edit a released migration;
// append a new one. Indexes exist for the hot paths named beside them.
namespace spt::server {

inline const char* const kMigrations[] = {
    // ---- v1
    R"sql(
CREATE TABLE experiments(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,                  -- "selftest", "exp10", ...
  parts TEXT NOT NULL,
  params_json TEXT NOT NULL,           -- the plan's normalised params
  priority INTEGER NOT NULL,
  state TEXT NOT NULL,                 -- running | done | failed | cancelled
  submitted_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  cancelled INTEGER NOT NULL DEFAULT 0,
  forced INTEGER NOT NULL DEFAULT 0);
CREATE INDEX experiments_by_name ON experiments(name, id);
CREATE INDEX experiments_by_state ON experiments(state);

CREATE TABLE jobs(
  id INTEGER PRIMARY KEY,
  experiment_id INTEGER NOT NULL REFERENCES experiments(id),
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  params_json TEXT NOT NULL,
  model TEXT NOT NULL,                 -- affinity key, '' = none
  reduce INTEGER NOT NULL,
  state TEXT NOT NULL,                 -- blocked|pending|leased|done|failed|cancelled
  priority INTEGER NOT NULL,           -- copied from the experiment
  attempts INTEGER NOT NULL DEFAULT 0, -- leases handed out
  max_attempts INTEGER NOT NULL,
  expiries INTEGER NOT NULL DEFAULT 0, -- leases that ran out
  not_before_ms INTEGER NOT NULL DEFAULT 0,  -- retry backoff
  lease_id TEXT,
  lease_owner TEXT,                    -- worker id
  lease_expires_ms INTEGER NOT NULL DEFAULT 0,
  timeout_s INTEGER NOT NULL,
  result_json TEXT,
  error TEXT NOT NULL DEFAULT '',      -- last error
  log TEXT NOT NULL DEFAULT '',        -- tail of the last attempt's log
  seconds REAL NOT NULL DEFAULT 0,
  content_key TEXT NOT NULL,
  n_deps_left INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  reused_from INTEGER,                 -- job whose stored result this is
  UNIQUE(experiment_id, name));
-- lease: next jobs in priority order; affinity: same priority and model
CREATE INDEX jobs_ready ON jobs(priority DESC, id) WHERE state = 'pending';
CREATE INDEX jobs_affinity ON jobs(priority, model, id) WHERE state = 'pending';
-- long-poll: when the next backed-off job becomes leasable
CREATE INDEX jobs_deferred ON jobs(not_before_ms) WHERE state = 'pending';
-- heartbeat, reaper, worker listing
CREATE INDEX jobs_by_lease ON jobs(lease_id) WHERE state = 'leased';
CREATE INDEX jobs_by_expiry ON jobs(lease_expires_ms) WHERE state = 'leased';
CREATE INDEX jobs_by_owner ON jobs(lease_owner) WHERE state = 'leased';
-- submit: stored results
CREATE INDEX jobs_by_content ON jobs(content_key) WHERE state = 'done';
-- status counts, completion checks, throughput windows
CREATE INDEX jobs_by_experiment ON jobs(experiment_id, state, finished_ms);

CREATE TABLE deps(
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  dep_id INTEGER NOT NULL REFERENCES jobs(id),
  PRIMARY KEY(job_id, dep_id)) WITHOUT ROWID;
CREATE INDEX deps_by_dep ON deps(dep_id);  -- release dependents

CREATE TABLE workers(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  caps_json TEXT NOT NULL,
  job_kinds_json TEXT NOT NULL,        -- JSON array; [] = any kind
  registered_ms INTEGER NOT NULL,
  last_heartbeat_ms INTEGER NOT NULL,
  loaded_models TEXT NOT NULL DEFAULT '[]',
  jobs_done INTEGER NOT NULL DEFAULT 0);

-- Content-addressed blobs (bytes on disk) and the names registered for
-- them (models, datasets); experiment outputs are attached per experiment.
CREATE TABLE blobs(
  sha256 TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE TABLE names(
  name TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL REFERENCES blobs(sha256),
  created_ms INTEGER NOT NULL);
CREATE TABLE experiment_artifacts(
  experiment_id INTEGER NOT NULL REFERENCES experiments(id),
  name TEXT NOT NULL,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  PRIMARY KEY(experiment_id, name));
CREATE INDEX experiment_artifacts_by_job ON experiment_artifacts(job_id);

CREATE TABLE job_events(
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  unix_ms INTEGER NOT NULL,
  event TEXT NOT NULL,
  detail TEXT NOT NULL);
CREATE INDEX job_events_by_job ON job_events(job_id);
)sql",
    // ---- v2: exclusive jobs (plan::JobSpec::exclusive)
    R"sql(
ALTER TABLE jobs ADD COLUMN exclusive INTEGER NOT NULL DEFAULT 0;
-- lease: the first leasable exclusive job (few rows: only pending exclusive ones)
CREATE INDEX jobs_exclusive ON jobs(priority DESC, id) WHERE state = 'pending' AND exclusive = 1;
)sql",
    // ---- v3: memory-aware leasing (plan::JobSpec::mem_bytes, Capabilities.memory_bytes),
    //      numerics canaries (spt/canary.h) and cheap status counts (jobs.part).
    //      Old jobs and workers get 0:
    //      jobs without a footprint go anywhere; an old worker row holds no
    //      memory until it registers again.
    R"sql(
ALTER TABLE jobs ADD COLUMN mem_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN mem_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN quarantine TEXT NOT NULL DEFAULT '';     -- '' = may lease
ALTER TABLE workers ADD COLUMN canaries_json TEXT NOT NULL DEFAULT '[]'; -- latest judged canary per precision
-- status: pending jobs too big for every live worker
CREATE INDEX jobs_by_mem ON jobs(mem_bytes) WHERE state = 'pending';
-- status: a job's part (its name's first path segment, '' if none; set by
-- submit, derived here for older rows) so that per-part and overall counts,
-- retries and failed-by-dependency come from one index-only GROUP BY.
ALTER TABLE jobs ADD COLUMN part TEXT NOT NULL DEFAULT '';
UPDATE jobs SET part = substr(name, 1, instr(name, '/') - 1) WHERE instr(name, '/') > 0;
CREATE INDEX jobs_by_part ON jobs(experiment_id, part, state, attempts);
-- status throughput: completions (not reuses) in a window, index-only (the
-- constant columns make it covering; jobs_by_experiment reads every row)
CREATE INDEX jobs_completions ON jobs(experiment_id, finished_ms, reused_from, state)
  WHERE state = 'done' AND reused_from IS NULL;
)sql",
    // ---- v4: a pool that faces the internet (issue 12): worker identity,
    //      chunked submissions, shared submission data, report hardening.
    //      One block per concern below; each states why its columns exist.
    R"sql(
-- worker identity (roles and worker secrets): sha256 hex of the secret
-- Register hands a worker; worker RPCs must present the secret. '' for
-- workers registered before v4: they are told to register again.
ALTER TABLE workers ADD COLUMN secret_sha256 TEXT NOT NULL DEFAULT '';
-- dying workers: attempts whose worker died while running the job (its
-- lease expired while the worker was silent, or the worker registered again
-- under its name), and who they were ("name (memory)", distinct, ", "-joined)
-- for the job's final error and status. A death also raises the job's
-- mem_bytes above the dead worker's memory (the planned figure is not kept).
ALTER TABLE jobs ADD COLUMN deaths INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN died_on TEXT NOT NULL DEFAULT '';
-- chunked submissions and shared submission data: a large plan is stored
-- in many short transactions while experiments.state = 'submitting' (its
-- jobs held: blocked with n_deps_left = 0, so none is leased or reused
-- before the last chunk is in); jobs_planned = the plan's job count, for
-- status; submit_error says why a submission was dropped (coordinator
-- stopped, client went away: its jobs are removed, the row stays failed).
-- experiment_shared: params every job of the plan carries (plan::Plan::shared,
-- e.g. selftest's tag), stored once rather than in each job's row; a table
-- of its own, written once, so that updates of the experiment row (state,
-- finish) never rewrite a large tag. No row = no shared params.
CREATE TABLE experiment_shared(
  experiment_id INTEGER PRIMARY KEY REFERENCES experiments(id),
  shared_json TEXT NOT NULL);
ALTER TABLE experiments ADD COLUMN jobs_planned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiments ADD COLUMN submit_error TEXT NOT NULL DEFAULT '';
)sql",
};

}  // namespace spt::server
