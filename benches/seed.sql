-- The benchmark database: events 1..:events, event e has tutor 2e-1 and tutee 2e.
-- psql -v events=10000 -f benches/seed.sql DBNAME
DROP TABLE IF EXISTS requested_event;
DROP TABLE IF EXISTS users;
CREATE TABLE users (userid integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE requested_event (
    eventid      integer PRIMARY KEY,
    userid_tutor integer REFERENCES users(userid),
    userid_tutee integer REFERENCES users(userid));
INSERT INTO users SELECT g, 'User ' || g FROM generate_series(1, 2 * :events) g;
INSERT INTO requested_event SELECT e, 2 * e - 1, 2 * e FROM generate_series(1, :events) e;
ANALYZE users;
ANALYZE requested_event;
