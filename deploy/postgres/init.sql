-- One database and one role per service: each service owns its tables and can reach no other's.
-- Run once as a superuser on a shared server (the embedded dev default creates the databases itself).
-- Passwords are set out of band (ALTER ROLE ... PASSWORD) from the deployment's secret store.
CREATE ROLE account LOGIN;
CREATE ROLE api_keys LOGIN;
CREATE ROLE integrations LOGIN;
CREATE ROLE monitoring LOGIN;
CREATE ROLE onboarding LOGIN;
CREATE DATABASE account OWNER account;
CREATE DATABASE api_keys OWNER api_keys;
CREATE DATABASE integrations OWNER integrations;
CREATE DATABASE monitoring OWNER monitoring;
CREATE DATABASE onboarding OWNER onboarding;
REVOKE ALL ON DATABASE account, api_keys, integrations, monitoring, onboarding FROM PUBLIC;
