// Ordered schema steps. Each runs inside one transaction; the version is SQLite's user_version.
export const migrations: string[] = [
  // 1: images and instances
  `CREATE TABLE images (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     provider TEXT NOT NULL,
     size_bytes INTEGER NOT NULL,
     created TEXT NOT NULL,
     manifest TEXT NOT NULL
   );
   CREATE TABLE instances (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     image_id TEXT NOT NULL REFERENCES images(id),
     provider TEXT NOT NULL,
     created TEXT NOT NULL,
     spec TEXT NOT NULL,
     status TEXT NOT NULL
   );`,
  // 2: volumes; an attachment is (instance, mount point), at most one volume per mount point
  `CREATE TABLE volumes (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     provider TEXT NOT NULL,
     type TEXT NOT NULL,
     size_bytes INTEGER NOT NULL,
     created TEXT NOT NULL,
     instance_id TEXT REFERENCES instances(id),
     mount_point TEXT,
     UNIQUE (instance_id, mount_point)
   );`,
  // 3: bridged networks; which instances are on one is in their spec (spec.network)
  `CREATE TABLE networks (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     driver TEXT NOT NULL,
     subnet TEXT NOT NULL UNIQUE,
     gateway TEXT NOT NULL,
     bridge TEXT NOT NULL UNIQUE,
     created TEXT NOT NULL,
     labels TEXT NOT NULL
   );`,
  // 4: the watcher asks for the live instances four times a second; with this index SQLite
  // finds them without reading every stopped record (store.liveInstanceIds uses the same expression)
  `CREATE INDEX instances_state ON instances (json_extract(status, '$.state'));`,
];
