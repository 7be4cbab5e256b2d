//! `\d NAME` and `\d+ NAME`: one relation in detail (psql's
//! `describeTableDetails` and `describeOneTableDetails`): the columns, then
//! the footers a table, view, index or sequence has.

use super::{col, is_true, left, literal, pattern_sql, Ctx, Failed, PatternVars, Res, Row};
use crate::print::{Align, Table};

/// What psql reads about the relation before its columns.
struct Info {
    checks: i64,
    kind: char,
    has_index: bool,
    has_rules: bool,
    has_triggers: bool,
    row_security: bool,
    force_row_security: bool,
    is_partition: bool,
    options: String,
    tablespace: String,
    of_type: String,
    persistence: char,
    replident: char,
    access_method: String,
}

fn ch(row: &Row, i: usize) -> char {
    col(row, i).chars().next().unwrap_or(' ')
}

impl Ctx<'_> {
    pub(super) fn describe_details(
        &mut self,
        pattern: &str,
        verbose: bool,
        system: bool,
    ) -> Res<()> {
        let mut sql = String::from(
            "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     \
             LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n",
        );
        let _ = system;
        sql.push_str(&pattern_sql(
            Some(pattern),
            false,
            &PatternVars {
                schema: Some("n.nspname"),
                name: "c.relname",
                alt_name: None,
                visible: Some("pg_catalog.pg_table_is_visible(c.oid)"),
            },
        )?);
        sql.push_str("ORDER BY 2, 3;");
        let found = self.query(&sql)?;
        if found.is_empty() {
            return Err(Failed::Said(format!(
                "Did not find any relation named \"{pattern}\"."
            )));
        }
        for row in &found {
            self.describe_one(col(row, 0), col(row, 1), col(row, 2), verbose)?;
        }
        Ok(())
    }

    fn describe_one(&mut self, oid: &str, schema: &str, name: &str, verbose: bool) -> Res<()> {
        let oid_lit = literal(oid);
        let rows = self.query(&format!(
            "SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, c.relrowsecurity, \
             c.relforcerowsecurity, false AS relhasoids, c.relispartition, \
             pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')\n\
             , c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, \
             c.relpersistence, c.relreplident, am.amname\n\
             FROM pg_catalog.pg_class c\n LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)\n\
             LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)\nWHERE c.oid = {oid_lit};"
        ))?;
        let Some(r) = rows.first() else {
            return Err(Failed::Said(format!(
                "Did not find any relation with OID {oid}."
            )));
        };
        let info = Info {
            checks: col(r, 0).parse().unwrap_or(0),
            kind: ch(r, 1),
            has_index: is_true(r, 2),
            has_rules: is_true(r, 3),
            has_triggers: is_true(r, 4),
            row_security: is_true(r, 5),
            force_row_security: is_true(r, 6),
            is_partition: is_true(r, 8),
            options: col(r, 9).to_owned(),
            tablespace: col(r, 10).to_owned(),
            of_type: col(r, 11).to_owned(),
            persistence: ch(r, 12),
            replident: ch(r, 13),
            access_method: col(r, 14).to_owned(),
        };
        if info.kind == 'S' {
            return self.describe_sequence(oid, schema, name, verbose);
        }
        let k = info.kind;
        let is_index = matches!(k, 'i' | 'I');
        let show_stats = matches!(k, 'r' | 'i' | 'm' | 'f' | 'p' | 'I');
        let show_description = matches!(k, 'r' | 'v' | 'm' | 'f' | 'c' | 'p');
        let show_compression = matches!(k, 'r' | 'p' | 'm');
        let show_column_details = matches!(k, 'r' | 'v' | 'm' | 'f' | 'c' | 'p');

        let mut sql =
            String::from("SELECT a.attname,\n  pg_catalog.format_type(a.atttypid, a.atttypmod)");
        if show_column_details {
            sql.push_str(
                ",\n  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)\n   FROM pg_catalog.pg_attrdef d\n   \
                 WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),\n  a.attnotnull,\n  \
                 (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t\n   \
                 WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,\n  \
                 a.attidentity,\n  a.attgenerated",
            );
        } else {
            sql.push_str(",\n  NULL, false, NULL, '', ''");
        }
        if is_index {
            sql.push_str(&format!(
                ",\n  CASE WHEN a.attnum <= (SELECT i.indnkeyatts FROM pg_catalog.pg_index i WHERE i.indexrelid = {oid_lit}) THEN 'yes' ELSE 'no' END AS is_key,\n  \
                 pg_catalog.pg_get_indexdef(a.attrelid, a.attnum, TRUE) AS indexdef"
            ));
        } else {
            sql.push_str(",\n  NULL, NULL");
        }
        if verbose {
            sql.push_str(
                ",\n  a.attstorage,\n  a.attcompression AS attcompression,\n  \
                 CASE WHEN a.attstattarget=-1 THEN NULL ELSE a.attstattarget END AS attstattarget,\n  \
                 pg_catalog.col_description(a.attrelid, a.attnum)",
            );
        }
        sql.push_str(&format!(
            "\nFROM pg_catalog.pg_attribute a\nWHERE a.attrelid = {oid_lit} AND a.attnum > 0 AND NOT a.attisdropped\nORDER BY a.attnum;"
        ));
        let columns = self.query(&sql)?;

        let kind_title = match (k, info.persistence) {
            ('r', 'u') => "Unlogged table",
            ('r', _) => "Table",
            ('v', _) => "View",
            ('m', 'u') => "Unlogged materialized view",
            ('m', _) => "Materialized view",
            ('i', 'u') => "Unlogged index",
            ('i', _) => "Index",
            ('I', 'u') => "Unlogged partitioned index",
            ('I', _) => "Partitioned index",
            ('t', _) => "TOAST table",
            ('c', _) => "Composite type",
            ('f', _) => "Foreign table",
            ('p', 'u') => "Unlogged partitioned table",
            ('p', _) => "Partitioned table",
            _ => "?",
        };
        let title = format!("{kind_title} \"{schema}.{name}\"");

        let mut headers: Vec<&str> = vec!["Column", "Type"];
        if show_column_details {
            headers.extend(["Collation", "Nullable", "Default"]);
        }
        if is_index {
            headers.extend(["Key?", "Definition"]);
        }
        if verbose {
            headers.push("Storage");
            if show_compression {
                headers.push("Compression");
            }
            if show_stats {
                headers.push("Stats target");
            }
            if show_description {
                headers.push("Description");
            }
        }
        let mut rows = Vec::new();
        for c in &columns {
            let mut cells: Vec<Option<String>> =
                vec![Some(col(c, 0).to_owned()), Some(col(c, 1).to_owned())];
            if show_column_details {
                cells.push(Some(col(c, 4).to_owned()));
                cells.push(Some(if is_true(c, 3) { "not null" } else { "" }.to_owned()));
                let default = match (ch(c, 5), ch(c, 6)) {
                    ('a', _) => "generated always as identity".to_owned(),
                    ('d', _) => "generated by default as identity".to_owned(),
                    (_, 's') => format!("generated always as ({}) stored", col(c, 2)),
                    _ => col(c, 2).to_owned(),
                };
                cells.push(Some(default));
            }
            if is_index {
                cells.push(Some(col(c, 7).to_owned()));
                cells.push(Some(col(c, 8).to_owned()));
            }
            if verbose {
                cells.push(Some(
                    match ch(c, 9) {
                        'p' => "plain",
                        'm' => "main",
                        'x' => "extended",
                        'e' => "external",
                        _ => "???",
                    }
                    .to_owned(),
                ));
                if show_compression {
                    cells.push(Some(
                        match ch(c, 10) {
                            'p' => "pglz",
                            'l' => "lz4",
                            _ => "",
                        }
                        .to_owned(),
                    ));
                }
                if show_stats {
                    cells.push(Some(col(c, 11).to_owned()));
                }
                if show_description {
                    cells.push(Some(col(c, 12).to_owned()));
                }
            }
            rows.push(cells);
        }

        let mut footers = Vec::new();
        if is_index {
            self.index_footers(oid, &info, &mut footers)?;
        } else if matches!(k, 'r' | 'm' | 'f' | 'p' | 'v') {
            if k != 'v' {
                self.partition_footers(oid, &info, verbose, &mut footers)?;
            }
            if matches!(k, 'r' | 'm' | 'p') {
                self.table_footers(oid, &info, verbose, &mut footers)?;
            }
            if k == 'v' && verbose {
                let def = self.query(&format!(
                    "SELECT pg_catalog.pg_get_viewdef({oid_lit}::pg_catalog.oid, true);"
                ))?;
                footers.push("View definition:".to_owned());
                if let Some(d) = def.first() {
                    footers.extend(col(d, 0).lines().map(str::to_owned));
                }
                if info.has_rules {
                    self.rules(oid, true, &mut footers)?;
                }
            }
            if info.has_triggers {
                self.triggers(oid, &mut footers)?;
            }
            if matches!(k, 'r' | 'm' | 'f' | 'p') {
                self.inheritance_footers(oid, &info, verbose, &mut footers)?;
            }
            if !info.of_type.is_empty() {
                footers.push(format!("Typed table of type: {}", info.of_type));
            }
            if verbose && matches!(k, 'r' | 'm') && info.replident != 'd' && info.replident != 'i' {
                let schema_is_system = schema == "pg_catalog";
                if !(info.replident == 'n' && schema_is_system) {
                    footers.push(format!(
                        "Replica Identity: {}",
                        if info.replident == 'f' {
                            "FULL"
                        } else {
                            "NOTHING"
                        }
                    ));
                }
            }
            if verbose && !info.access_method.is_empty() {
                footers.push(format!("Access method: {}", info.access_method));
            }
        }
        if verbose && !info.options.is_empty() {
            footers.push(format!("Options: {}", info.options));
        }
        if info.tablespace != "0" && !info.tablespace.is_empty() {
            let ts = self.query(&format!(
                "SELECT spcname FROM pg_catalog.pg_tablespace\nWHERE oid = {};",
                literal(&info.tablespace)
            ))?;
            if let Some(t) = ts.first() {
                footers.push(format!("Tablespace: \"{}\"", col(t, 0)));
            }
        }
        let aligns = left(headers.len());
        let table = Table {
            title: Some(title),
            headers: headers.into_iter().map(String::from).collect(),
            aligns,
            rows,
            footers: Some(footers),
        };
        self.print(&table)
    }

    fn describe_sequence(&mut self, oid: &str, schema: &str, name: &str, verbose: bool) -> Res<()> {
        let _ = verbose;
        let oid_lit = literal(oid);
        let seq = self.query(&format!(
            "SELECT pg_catalog.format_type(seqtypid, NULL) AS \"Type\",\n       seqstart AS \"Start\",\n       \
             seqmin AS \"Minimum\",\n       seqmax AS \"Maximum\",\n       seqincrement AS \"Increment\",\n       \
             CASE WHEN seqcycle THEN 'yes' ELSE 'no' END AS \"Cycles?\",\n       seqcache AS \"Cache\"\n\
             FROM pg_catalog.pg_sequence\nWHERE seqrelid = {oid_lit};"
        ))?;
        let owner = self.query(&format!(
            "SELECT pg_catalog.quote_ident(nspname) || '.' ||\n   pg_catalog.quote_ident(relname) || '.' ||\n   \
             pg_catalog.quote_ident(attname),\n   d.deptype\nFROM pg_catalog.pg_class c\n\
             INNER JOIN pg_catalog.pg_depend d ON c.oid=d.refobjid\n\
             INNER JOIN pg_catalog.pg_namespace n ON n.oid=c.relnamespace\n\
             INNER JOIN pg_catalog.pg_attribute a ON (\n a.attrelid=c.oid AND\n a.attnum=d.refobjsubid)\n\
             WHERE d.classid='pg_catalog.pg_class'::pg_catalog.regclass\n \
             AND d.refclassid='pg_catalog.pg_class'::pg_catalog.regclass\n \
             AND d.objid={oid_lit}\n AND d.deptype IN ('a', 'i')"
        ))?;
        let mut footers = Vec::new();
        if let Some(o) = owner.first() {
            match ch(o, 1) {
                'a' => footers.push(format!("Owned by: {}", col(o, 0))),
                'i' => footers.push(format!("Sequence for identity column: {}", col(o, 0))),
                _ => {}
            }
        }
        let title = format!("Sequence \"{schema}.{name}\"");
        let headers = [
            "Type",
            "Start",
            "Minimum",
            "Maximum",
            "Increment",
            "Cycles?",
            "Cache",
        ];
        let table = Table {
            title: Some(title),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            aligns: vec![
                Align::Left,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Left,
                Align::Right,
            ],
            rows: seq,
            footers: Some(footers),
        };
        self.print(&table)
    }

    /// The footer of an index: "primary key, btree, for table …".
    fn index_footers(&mut self, oid: &str, info: &Info, footers: &mut Vec<String>) -> Res<()> {
        let oid_lit = literal(oid);
        let rows = self.query(&format!(
            "SELECT i.indisunique, i.indisprimary, i.indisclustered, i.indisvalid,\n  \
             (NOT i.indimmediate) AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x') AND condeferrable) AS condeferrable,\n  \
             (NOT i.indimmediate) AND EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x') AND condeferred) AS condeferred,\n  \
             i.indisreplident,\n  i.indnullsnotdistinct,\n  a.amname, c2.relname, pg_catalog.pg_get_expr(i.indpred, i.indrelid, true), n2.nspname\n\
             FROM pg_catalog.pg_index i, pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_am a, pg_catalog.pg_namespace n2\n\
             WHERE i.indexrelid = c.oid AND c.oid = {oid_lit} AND c.relam = a.oid\nAND i.indrelid = c2.oid AND n2.oid = c2.relnamespace;"
        ))?;
        if let Some(r) = rows.first() {
            let mut line = String::new();
            if is_true(r, 1) {
                line.push_str("primary key, ");
            } else if is_true(r, 0) {
                line.push_str(if is_true(r, 7) {
                    "unique nulls not distinct, "
                } else {
                    "unique, "
                });
            }
            line.push_str(&format!(
                "{}, for table \"{}.{}\"",
                col(r, 8),
                col(r, 11),
                col(r, 9)
            ));
            if !col(r, 10).is_empty() {
                line.push_str(&format!(", predicate ({})", col(r, 10)));
            }
            if is_true(r, 2) {
                line.push_str(", clustered");
            }
            if !is_true(r, 3) {
                line.push_str(", invalid");
            }
            if is_true(r, 4) {
                line.push_str(", deferrable");
            }
            if is_true(r, 5) {
                line.push_str(", initially deferred");
            }
            if is_true(r, 6) {
                line.push_str(", replica identity");
            }
            footers.push(line);
        }
        let _ = info;
        Ok(())
    }

    /// "Partition of:", "Partition constraint:", "Partition key:".
    fn partition_footers(
        &mut self,
        oid: &str,
        info: &Info,
        verbose: bool,
        footers: &mut Vec<String>,
    ) -> Res<()> {
        let oid_lit = literal(oid);
        if info.is_partition {
            let rows = self.query(&format!(
                "SELECT inhparent::pg_catalog.regclass,\n  pg_catalog.pg_get_expr(c.relpartbound, c.oid),\n  \
                 inhdetachpending,\n  pg_catalog.pg_get_partition_constraintdef(c.oid)\n\
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_inherits i ON c.oid = inhrelid\n\
                 WHERE c.oid = {oid_lit};"
            ))?;
            if let Some(r) = rows.first() {
                footers.push(format!(
                    "Partition of: {} {}{}",
                    col(r, 0),
                    col(r, 1),
                    if is_true(r, 2) { " DETACH PENDING" } else { "" }
                ));
                if verbose {
                    footers.push(if col(r, 3).is_empty() {
                        "No partition constraint".to_owned()
                    } else {
                        format!("Partition constraint: {}", col(r, 3))
                    });
                }
            }
        }
        if info.kind == 'p' {
            let rows = self.query(&format!(
                "SELECT pg_catalog.pg_get_partkeydef({oid_lit}::pg_catalog.oid);"
            ))?;
            if let Some(r) = rows.first() {
                footers.push(format!("Partition key: {}", col(r, 0)));
            }
        }
        Ok(())
    }

    /// Indexes, check and foreign-key constraints, "Referenced by", row
    /// security policies, rules.
    fn table_footers(
        &mut self,
        oid: &str,
        info: &Info,
        verbose: bool,
        footers: &mut Vec<String>,
    ) -> Res<()> {
        let oid_lit = literal(oid);
        if info.has_index {
            let rows = self.query(&format!(
                "SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid, \
                 pg_catalog.pg_get_indexdef(i.indexrelid, 0, true),\n  \
                 pg_catalog.pg_get_constraintdef(con.oid, true), contype, condeferrable, condeferred, \
                 i.indisreplident, c2.reltablespace\n\
                 FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i\n  \
                 LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))\n\
                 WHERE c.oid = {oid_lit} AND c.oid = i.indrelid AND i.indexrelid = c2.oid\n\
                 ORDER BY i.indisprimary DESC, c2.relname;"
            ))?;
            if !rows.is_empty() {
                footers.push("Indexes:".to_owned());
                for r in &rows {
                    let mut line = format!("    \"{}\"", col(r, 0));
                    if col(r, 7) == "x" {
                        line.push_str(&format!(" {}", col(r, 6)));
                    } else {
                        if is_true(r, 1) {
                            line.push_str(" PRIMARY KEY,");
                        } else if is_true(r, 2) {
                            line.push_str(if col(r, 7) == "u" {
                                " UNIQUE CONSTRAINT,"
                            } else {
                                " UNIQUE,"
                            });
                        }
                        let def = col(r, 5);
                        let def = def.split_once(" USING ").map_or(def, |(_, m)| m);
                        line.push_str(&format!(" {def}"));
                        if is_true(r, 8) {
                            line.push_str(" DEFERRABLE");
                        }
                        if is_true(r, 9) {
                            line.push_str(" INITIALLY DEFERRED");
                        }
                    }
                    if is_true(r, 3) {
                        line.push_str(" CLUSTER");
                    }
                    if !is_true(r, 4) {
                        line.push_str(" INVALID");
                    }
                    if is_true(r, 10) {
                        line.push_str(" REPLICA IDENTITY");
                    }
                    footers.push(line);
                }
            }
        }
        if info.checks > 0 {
            let rows = self.query(&format!(
                "SELECT r.conname, pg_catalog.pg_get_constraintdef(r.oid, true)\n\
                 FROM pg_catalog.pg_constraint r\nWHERE r.conrelid = {oid_lit} AND r.contype = 'c'\nORDER BY 1;"
            ))?;
            if !rows.is_empty() {
                footers.push("Check constraints:".to_owned());
                for r in &rows {
                    footers.push(format!("    \"{}\" {}", col(r, 0), col(r, 1)));
                }
            }
        }
        if info.has_triggers || info.kind == 'p' {
            let sql = if info.is_partition || info.kind == 'p' {
                format!(
                    "SELECT conrelid = {oid_lit}::pg_catalog.regclass AS sametable,\n       conname,\n       \
                     pg_catalog.pg_get_constraintdef(oid, true) AS condef,\n       conrelid::pg_catalog.regclass AS ontable\n  \
                     FROM pg_catalog.pg_constraint,\n       pg_catalog.pg_partition_ancestors({oid_lit})\n \
                     WHERE conrelid = relid AND contype = 'f' AND conparentid = 0\nORDER BY sametable DESC, conname;"
                )
            } else {
                format!(
                    "SELECT true as sametable, conname,\n  pg_catalog.pg_get_constraintdef(r.oid, true) as condef,\n  \
                     conrelid::pg_catalog.regclass AS ontable\nFROM pg_catalog.pg_constraint r\n\
                     WHERE r.conrelid = {oid_lit} AND r.contype = 'f'\n     AND conparentid = 0\nORDER BY conname"
                )
            };
            let rows = self.query(&sql)?;
            if !rows.is_empty() {
                footers.push("Foreign-key constraints:".to_owned());
                for r in &rows {
                    if is_true(r, 0) {
                        footers.push(format!("    \"{}\" {}", col(r, 1), col(r, 2)));
                    } else {
                        footers.push(format!(
                            "    TABLE \"{}\" CONSTRAINT \"{}\" {}",
                            col(r, 3),
                            col(r, 1),
                            col(r, 2)
                        ));
                    }
                }
            }
            let rows = self.query(&format!(
                "SELECT conname, conrelid::pg_catalog.regclass AS ontable,\n       \
                 pg_catalog.pg_get_constraintdef(oid, true) AS condef\n  FROM pg_catalog.pg_constraint c\n \
                 WHERE confrelid IN (SELECT pg_catalog.pg_partition_ancestors({oid_lit})\n                     \
                 UNION ALL VALUES ({oid_lit}::pg_catalog.regclass))\n       AND contype = 'f' AND conparentid = 0\n\
                 ORDER BY conname;"
            ))?;
            if !rows.is_empty() {
                footers.push("Referenced by:".to_owned());
                for r in &rows {
                    footers.push(format!(
                        "    TABLE \"{}\" CONSTRAINT \"{}\" {}",
                        col(r, 1),
                        col(r, 0),
                        col(r, 2)
                    ));
                }
            }
        }
        // Row security.
        let policies = self.query(&format!(
            "SELECT pol.polname, pol.polpermissive,\n  \
             CASE WHEN pol.polroles = '{{0}}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END,\n  \
             pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),\n  \
             pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid),\n  \
             CASE pol.polcmd\n    WHEN 'r' THEN 'SELECT'\n    WHEN 'a' THEN 'INSERT'\n    WHEN 'w' THEN 'UPDATE'\n    WHEN 'd' THEN 'DELETE'\n    END AS cmd\n\
             FROM pg_catalog.pg_policy pol\nWHERE pol.polrelid = {oid_lit} ORDER BY 1;"
        ))?;
        let head = match (info.row_security, info.force_row_security) {
            (true, false) => Some("Policies:"),
            (true, true) => Some("Policies (forced row security enabled):"),
            (false, _) if !policies.is_empty() => Some("Policies (row security disabled):"),
            _ => None,
        };
        if let Some(head) = head {
            if policies.is_empty() {
                footers.push(format!("{head} (none)"));
            } else {
                footers.push(head.to_owned());
            }
            for p in &policies {
                let mut line = format!("    POLICY \"{}\"", col(p, 0));
                if !is_true(p, 1) {
                    line.push_str(" AS RESTRICTIVE");
                }
                if !col(p, 5).is_empty() {
                    line.push_str(&format!(" FOR {}", col(p, 5)));
                }
                footers.push(line);
                if !col(p, 2).is_empty() {
                    footers.push(format!("      TO {}", col(p, 2)));
                }
                if !col(p, 3).is_empty() {
                    footers.push(format!("      USING ({})", col(p, 3)));
                }
                if !col(p, 4).is_empty() {
                    footers.push(format!("      WITH CHECK ({})", col(p, 4)));
                }
            }
        }
        // Extended statistics.
        let stats = self.query(&format!(
            "SELECT oid, stxrelid::pg_catalog.regclass, stxnamespace::pg_catalog.regnamespace::pg_catalog.text AS nsp, stxname,\n\
             pg_catalog.pg_get_statisticsobjdef_columns(oid) AS columns,\n  \
             'd' = any(stxkind) AS ndist_enabled,\n  'f' = any(stxkind) AS deps_enabled,\n  \
             'm' = any(stxkind) AS mcv_enabled,\nstxstattarget\n\
             FROM pg_catalog.pg_statistic_ext\nWHERE stxrelid = {oid_lit}\nORDER BY nsp, stxname;"
        ))?;
        if !stats.is_empty() {
            footers.push("Statistics objects:".to_owned());
            for s in &stats {
                let (d, f, m) = (is_true(s, 5), is_true(s, 6), is_true(s, 7));
                let mut line = format!("    \"{}.{}\"", col(s, 2), col(s, 3));
                let all = d && f && m;
                let has_kinds = d || f || m;
                if has_kinds && !all {
                    let kinds: Vec<&str> = [(d, "ndistinct"), (f, "dependencies"), (m, "mcv")]
                        .iter()
                        .filter(|(on, _)| *on)
                        .map(|(_, k)| *k)
                        .collect();
                    line.push_str(&format!(" ({})", kinds.join(", ")));
                }
                line.push_str(&format!(" ON {} FROM {}", col(s, 4), col(s, 1)));
                if col(s, 8) != "-1" && !col(s, 8).is_empty() {
                    line.push_str(&format!("; STATISTICS {}", col(s, 8)));
                }
                footers.push(line);
            }
        }
        if info.has_rules && info.kind != 'm' {
            self.rules(oid, false, footers)?;
        }
        // Publications.
        let publications = self.query(&format!(
            "SELECT pubname\n     , NULL\n     , NULL\nFROM pg_catalog.pg_publication p\n     \
             JOIN pg_catalog.pg_publication_namespace pn ON p.oid = pn.pnpubid\n     \
             JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.pnnspid\n\
             WHERE pc.oid ={oid_lit} and pg_catalog.pg_relation_is_publishable({oid_lit})\n\
             UNION\nSELECT pubname\n     , pg_get_expr(pr.prqual, c.oid)\n     \
             , (CASE WHEN pr.prattrs IS NOT NULL THEN\n         (SELECT string_agg(attname, ', ')\n           \
             FROM pg_catalog.generate_series(0, pg_catalog.array_upper(pr.prattrs::pg_catalog.int2[], 1)) s,\n                \
             pg_catalog.pg_attribute\n          WHERE attrelid = pr.prrelid AND attnum = prattrs[s])\n        ELSE NULL END) \
             FROM pg_catalog.pg_publication p\n     JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid\n     \
             JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid\nWHERE pr.prrelid = {oid_lit}\n\
             UNION\nSELECT pubname\n     , NULL\n     , NULL\nFROM pg_catalog.pg_publication p\n\
             WHERE p.puballtables AND pg_catalog.pg_relation_is_publishable({oid_lit})\nORDER BY 1;"
        ))?;
        if !publications.is_empty() {
            footers.push("Publications:".to_owned());
            for p in &publications {
                let mut line = format!("    \"{}\"", col(p, 0));
                if !col(p, 2).is_empty() {
                    line.push_str(&format!(" ({})", col(p, 2)));
                }
                if !col(p, 1).is_empty() {
                    line.push_str(&format!(" WHERE {}", col(p, 1)));
                }
                footers.push(line);
            }
        }
        let _ = verbose;
        Ok(())
    }

    fn rules(&mut self, oid: &str, view: bool, footers: &mut Vec<String>) -> Res<()> {
        let oid_lit = literal(oid);
        let rows = self.query(&format!(
            "SELECT r.rulename, trim(trailing ';' from pg_catalog.pg_get_ruledef(r.oid, true)), ev_enabled\n\
             FROM pg_catalog.pg_rewrite r\nWHERE r.ev_class = {oid_lit}{}ORDER BY 1;",
            if view {
                " AND r.rulename != '_RETURN' "
            } else {
                " "
            }
        ))?;
        if rows.is_empty() {
            return Ok(());
        }
        if view {
            footers.push("Rules:".to_owned());
            for r in &rows {
                let def = col(r, 1);
                let def = def.split_once(" RULE ").map_or(def, |(_, d)| d);
                footers.push(format!(" {def}"));
            }
            return Ok(());
        }
        for (category, heading) in [
            ('O', "Rules:"),
            ('D', "Disabled rules:"),
            ('A', "Rules firing always:"),
            ('R', "Rules firing on replica only:"),
        ] {
            let matching: Vec<&Row> = rows.iter().filter(|r| ch(r, 2) == category).collect();
            if matching.is_empty() {
                continue;
            }
            footers.push(heading.to_owned());
            for r in matching {
                let def = col(r, 1);
                let def = def.split_once(" RULE ").map_or(def, |(_, d)| d);
                footers.push(format!("    {def}"));
            }
        }
        Ok(())
    }

    fn triggers(&mut self, oid: &str, footers: &mut Vec<String>) -> Res<()> {
        let oid_lit = literal(oid);
        let rows = self.query(&format!(
            "SELECT t.tgname, pg_catalog.pg_get_triggerdef(t.oid, true), t.tgenabled, t.tgisinternal,\n  \
             CASE WHEN t.tgparentid != 0 THEN\n    (SELECT u.tgrelid::pg_catalog.regclass\n     \
             FROM pg_catalog.pg_trigger AS u,\n          pg_catalog.pg_partition_ancestors(t.tgrelid) WITH ORDINALITY AS a(relid, depth)\n     \
             WHERE u.tgname = t.tgname AND u.tgrelid = a.relid\n           AND u.tgparentid = 0\n     \
             ORDER BY a.depth LIMIT 1)\n  END AS parent\n\
             FROM pg_catalog.pg_trigger t\nWHERE t.tgrelid = {oid_lit} AND \
             (NOT t.tgisinternal OR (t.tgisinternal AND t.tgenabled = 'D') \n    \
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend WHERE objid = t.oid \n        \
             AND refclassid = 'pg_catalog.pg_trigger'::pg_catalog.regclass))\nORDER BY 1;"
        ))?;
        // (enabled letters, internal, heading)
        let groups: [(&str, bool, &str); 5] = [
            ("O", false, "Triggers:"),
            ("D", false, "Disabled user triggers:"),
            ("D", true, "Disabled internal triggers:"),
            ("A", false, "Triggers firing always:"),
            ("R", false, "Triggers firing on replica only:"),
        ];
        for (enabled, internal, heading) in groups {
            let matching: Vec<&Row> = rows
                .iter()
                .filter(|r| {
                    // Enabled triggers are listed whatever their internal
                    // flag; disabled ones by it.
                    col(r, 2) == enabled && (enabled != "D" || is_true(r, 3) == internal)
                })
                .collect();
            if matching.is_empty() {
                continue;
            }
            footers.push(heading.to_owned());
            for r in matching {
                let def = col(r, 1);
                let def = def.split_once(" TRIGGER ").map_or(def, |(_, d)| d);
                let mut line = format!("    {def}");
                if !col(r, 4).is_empty() {
                    line.push_str(&format!(", ON TABLE {}", col(r, 4)));
                }
                footers.push(line);
            }
        }
        Ok(())
    }

    /// "Inherits:", "Partitions:", "Child tables:", "Number of …".
    fn inheritance_footers(
        &mut self,
        oid: &str,
        info: &Info,
        verbose: bool,
        footers: &mut Vec<String>,
    ) -> Res<()> {
        let oid_lit = literal(oid);
        let parents = self.query(&format!(
            "SELECT c.oid::pg_catalog.regclass\nFROM pg_catalog.pg_class c, pg_catalog.pg_inherits i\n\
             WHERE c.oid = i.inhparent AND i.inhrelid = {oid_lit}\n  AND c.relkind != 'p' AND c.relkind != 'I'\nORDER BY inhseqno;"
        ))?;
        for (i, p) in parents.iter().enumerate() {
            let label = "Inherits";
            if i == 0 {
                footers.push(format!("{label}: {}", col(p, 0)));
            } else {
                footers.push(format!("{:width$}  {}", "", col(p, 0), width = label.len()));
            }
            if i + 1 < parents.len() {
                if let Some(last) = footers.last_mut() {
                    last.push(',');
                }
            }
        }
        let children = self.query(&format!(
            "SELECT c.oid::pg_catalog.regclass, c.relkind, inhdetachpending, pg_catalog.pg_get_expr(c.relpartbound, c.oid)\n\
             FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i\nWHERE c.oid = i.inhrelid AND i.inhparent = {oid_lit}\n\
             ORDER BY pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.oid::pg_catalog.regclass::pg_catalog.text;"
        ))?;
        let partitioned = info.kind == 'p';
        if !verbose {
            if partitioned {
                footers.push(format!(
                    "Number of partitions: {} (Use \\d+ to list them.)",
                    children.len()
                ));
            } else if !children.is_empty() {
                footers.push(format!(
                    "Number of child tables: {} (Use \\d+ to list them.)",
                    children.len()
                ));
            }
            return Ok(());
        }
        if children.is_empty() {
            if partitioned {
                footers.push("Number of partitions: 0".to_owned());
            }
            return Ok(());
        }
        let label = if partitioned {
            "Partitions"
        } else {
            "Child tables"
        };
        for (i, c) in children.iter().enumerate() {
            let mut line = if i == 0 {
                format!("{label}: {}", col(c, 0))
            } else {
                format!("{:width$}  {}", "", col(c, 0), width = label.len())
            };
            if !col(c, 3).is_empty() {
                line.push_str(&format!(" {}", col(c, 3)));
            }
            match ch(c, 1) {
                'p' => line.push_str(", PARTITIONED"),
                'f' => line.push_str(", FOREIGN"),
                _ => {}
            }
            if is_true(c, 2) {
                line.push_str(" (DETACH PENDING)");
            }
            if i + 1 < children.len() {
                line.push(',');
            }
            footers.push(line);
        }
        Ok(())
    }
}
