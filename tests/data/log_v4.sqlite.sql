BEGIN TRANSACTION;
CREATE TABLE api_keys (
	id VARCHAR NOT NULL, 
	name VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	key_hash VARCHAR NOT NULL, 
	hint VARCHAR NOT NULL, 
	models TEXT NOT NULL, 
	rpm INTEGER, 
	tpm INTEGER, 
	concurrency INTEGER, 
	budget DOUBLE, 
	budget_period VARCHAR, 
	budget_action VARCHAR, 
	expires_at DOUBLE, 
	status VARCHAR NOT NULL, 
	created_at DOUBLE NOT NULL, 
	updated_at DOUBLE NOT NULL, cache BOOLEAN, 
	PRIMARY KEY (id)
);
INSERT INTO "api_keys" VALUES('key_64ba9b6f1962e10c','old-key','acme','3cd174432fbeeec323f26d275a09af645db835ff27cf9ff0321a939ee30ada78','sk-tw-…wY3w','["gpt-4o-mini"]',NULL,NULL,NULL,NULL,NULL,NULL,NULL,'active',1.7953444879076874256e+09,1.7953444879076874256e+09,1);
CREATE TABLE requests (
	id INTEGER NOT NULL, 
	ts DOUBLE NOT NULL, 
	request_id VARCHAR NOT NULL, 
	key_id VARCHAR NOT NULL, 
	requested_model VARCHAR NOT NULL, 
	provider VARCHAR NOT NULL, 
	upstream_model VARCHAR NOT NULL, 
	status INTEGER NOT NULL, 
	error_type VARCHAR NOT NULL, 
	attempts INTEGER NOT NULL, 
	latency_ms DOUBLE NOT NULL, 
	ttft_ms DOUBLE, 
	input_tokens INTEGER NOT NULL, 
	cached_tokens INTEGER NOT NULL, 
	cache_write_tokens INTEGER NOT NULL, 
	output_tokens INTEGER NOT NULL, 
	reasoning_tokens INTEGER NOT NULL, 
	cost DOUBLE, 
	usage_estimated BOOLEAN NOT NULL, 
	stream BOOLEAN NOT NULL, 
	cache_status VARCHAR NOT NULL, 
	endpoint VARCHAR NOT NULL, 
	tenant VARCHAR NOT NULL, 
	request_body TEXT, 
	response_body TEXT, saved_cost DOUBLE, 
	PRIMARY KEY (id)
);
INSERT INTO "requests" VALUES(1,1763800000.0,'req_old0','key_old','gpt-4o-mini','openai','gpt-4o-mini',502,'upstream_error',1,12.5,NULL,10,2,0,5,0,NULL,0,0,'miss','chat','acme',NULL,NULL,NULL);
INSERT INTO "requests" VALUES(2,1763800001.0,'req_old1','key_old','gpt-4o-mini','openai','gpt-4o-mini',200,'',1,12.5,NULL,10,2,0,5,0,0.0001,0,1,'miss','chat','acme',NULL,NULL,NULL);
INSERT INTO "requests" VALUES(3,1763800002.0,'req_old2','key_old','gpt-4o-mini','openai','gpt-4o-mini',200,'',1,12.5,NULL,10,2,0,5,0,0.0002,0,0,'miss','chat','acme',NULL,NULL,NULL);
CREATE TABLE schema_migrations (
	version INTEGER NOT NULL, 
	name VARCHAR NOT NULL, 
	applied_at DOUBLE NOT NULL, 
	PRIMARY KEY (version)
);
INSERT INTO "schema_migrations" VALUES(1,'create requests',1.79534448788564944274e+09);
INSERT INTO "schema_migrations" VALUES(2,'create api_keys and tenants',1.79534448789348721501e+09);
INSERT INTO "schema_migrations" VALUES(3,'add requests.saved_cost',1.79534448789539885513e+09);
INSERT INTO "schema_migrations" VALUES(4,'add api_keys.cache',1.79534448789678239815e+09);
CREATE TABLE tenants (
	name VARCHAR NOT NULL, 
	rpm INTEGER, 
	tpm INTEGER, 
	concurrency INTEGER, 
	budget DOUBLE, 
	budget_period VARCHAR, 
	budget_action VARCHAR, 
	created_at DOUBLE NOT NULL, 
	updated_at DOUBLE NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "tenants" VALUES('acme',100,NULL,NULL,NULL,NULL,NULL,1.79534448790091156955e+09,1.79534448790091156955e+09);
CREATE INDEX ix_requests_ts ON requests (ts);
CREATE INDEX ix_requests_requested_model_ts ON requests (requested_model, ts);
CREATE INDEX ix_requests_key_id_ts ON requests (key_id, ts);
CREATE UNIQUE INDEX ux_api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX ix_api_keys_updated_at ON api_keys (updated_at);
CREATE UNIQUE INDEX ux_api_keys_live_name ON api_keys (name) WHERE status <> 'deleted';
CREATE INDEX ix_requests_tenant_ts ON requests (tenant, ts);
COMMIT;
