import { Inject, Injectable } from '@nestjs/common';
import { DATABASE, Database } from '../db/database';
import type { SoftwareReport } from './report';

export interface PublishedVersion {
  name: string;
  version: string;
  buildKey: string;
  probeKey: string;
  imageId: string;
  report: SoftwareReport;
}

interface Row {
  name: string;
  version: string;
  build_key: string;
  probe_key: string;
  image_id: string;
  report: string;
}

/** Published environment versions, stored as their measured reports. */
@Injectable()
export class CatalogueRepository {
  constructor(@Inject(DATABASE) private readonly db: Database) {}

  async upsert(r: SoftwareReport): Promise<void> {
    await this.db.run(
      `INSERT INTO environment_versions (name, version, status, labels, build_key, probe_key, manifest_hash, image_id, report, published_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name, version) DO UPDATE SET status = excluded.status, labels = excluded.labels,
         build_key = excluded.build_key, probe_key = excluded.probe_key, manifest_hash = excluded.manifest_hash,
         image_id = excluded.image_id, report = excluded.report, published_at = excluded.published_at`,
      [
        r.name,
        r.version,
        r.status,
        JSON.stringify(r.labels),
        r.image.buildKey,
        r.probeKey,
        r.image.manifestHash,
        r.image.id,
        JSON.stringify(r),
        new Date().toISOString(),
      ],
    );
  }

  async get(name: string, version: string): Promise<PublishedVersion | null> {
    const rows = await this.db.all<Row>('SELECT * FROM environment_versions WHERE name = ? AND version = ?', [name, version]);
    return rows.length ? toVersion(rows[0]) : null;
  }

  async all(): Promise<PublishedVersion[]> {
    const rows = await this.db.all<Row>('SELECT * FROM environment_versions ORDER BY name, version');
    return rows.map(toVersion);
  }
}

function toVersion(row: Row): PublishedVersion {
  return {
    name: row.name,
    version: row.version,
    buildKey: row.build_key,
    probeKey: row.probe_key,
    imageId: row.image_id,
    report: JSON.parse(row.report) as SoftwareReport,
  };
}
