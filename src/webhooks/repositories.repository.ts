import { Inject, Injectable } from '@nestjs/common';
import { DATABASE, Database } from '../db/database';

export interface RegisteredRepository {
  id: string;
  ownerId: string;
  fullName: string; // owner/name as the forge sends it
  cloneUrl: string; // what Kiln clones: the registered URL, never the payload's
  secret: string; // sealed
  branches: string[] | null; // which branches build (GitHub filter patterns); null = all
  labelMap: Record<string, string>;
  statusUrl: string | null; // API base for commit statuses, e.g. https://api.github.com
  statusToken: string | null; // sealed
  createdAt: string;
}

export interface Delivery {
  /** The row key (what the queue carries): a Kiln id; the forge's id for deliveries recorded before ids were per repository. */
  key: string;
  /** The forge's delivery id (X-GitHub-Delivery): unique per repository. */
  id: string;
  repositoryId: string;
  event: string;
  payload: unknown;
  state: 'queued' | 'done' | 'ignored' | 'failed';
  detail: string | null;
  runIds: string[];
  receivedAt: string;
}

interface RepoRow {
  id: string;
  owner_id: string;
  full_name: string;
  clone_url: string;
  secret: string;
  branches: string | null;
  label_map: string | null;
  status_url: string | null;
  status_token: string | null;
  created_at: string;
}
interface DeliveryRow {
  id: string;
  delivery_id: string | null;
  repository_id: string;
  event: string;
  payload: string;
  state: string;
  detail: string | null;
  run_ids: string | null;
  received_at: string;
}

/** Registered repositories and the deliveries their webhooks sent (each delivery id recorded once per repository). */
@Injectable()
export class RepositoriesRepository {
  constructor(@Inject(DATABASE) private readonly db: Database) {}

  /**
   * Records a repository unless its owner already has `max` of them (one statement, so two
   * registrations at once cannot both pass the count on SQLite). false: the cap was reached.
   */
  async create(r: RegisteredRepository, max = Infinity): Promise<boolean> {
    const values = [
      r.id,
      r.ownerId,
      r.fullName,
      r.cloneUrl,
      r.secret,
      r.branches ? JSON.stringify(r.branches) : null,
      JSON.stringify(r.labelMap),
      r.statusUrl,
      r.statusToken,
      r.createdAt,
    ];
    const columns = 'id, owner_id, full_name, clone_url, secret, branches, label_map, status_url, status_token, created_at';
    if (!Number.isFinite(max)) {
      await this.db.run(`INSERT INTO repositories (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, values);
      return true;
    }
    const changed = await this.db.run(
      `INSERT INTO repositories (${columns}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM repositories WHERE owner_id = ?) < ?`,
      [...values, r.ownerId, max],
    );
    return changed > 0;
  }

  async countOwned(ownerId: string): Promise<number> {
    const rows = await this.db.all<{ n: number | string }>('SELECT COUNT(*) AS n FROM repositories WHERE owner_id = ?', [ownerId]);
    return Number(rows[0]?.n ?? 0);
  }

  async byName(fullName: string): Promise<RegisteredRepository | null> {
    const rows = await this.db.all<RepoRow>('SELECT * FROM repositories WHERE LOWER(full_name) = LOWER(?)', [fullName]);
    return rows.length ? toRepo(rows[0]) : null;
  }

  async byId(id: string): Promise<RegisteredRepository | null> {
    const rows = await this.db.all<RepoRow>('SELECT * FROM repositories WHERE id = ?', [id]);
    return rows.length ? toRepo(rows[0]) : null;
  }

  async list(ownerId: string | null): Promise<RegisteredRepository[]> {
    const rows = ownerId
      ? await this.db.all<RepoRow>('SELECT * FROM repositories WHERE owner_id = ? ORDER BY full_name', [ownerId])
      : await this.db.all<RepoRow>('SELECT * FROM repositories ORDER BY full_name');
    return rows.map(toRepo);
  }

  async remove(id: string): Promise<void> {
    await this.db.run('DELETE FROM deliveries WHERE repository_id = ?', [id]);
    await this.db.run('DELETE FROM repositories WHERE id = ?', [id]);
  }

  /** Records a delivery; false when this repository received its id before (a redelivery). */
  async recordDelivery(d: Delivery): Promise<boolean> {
    try {
      await this.db.run(
        'INSERT INTO deliveries (id, delivery_id, repository_id, event, payload, state, detail, run_ids, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [d.key, d.id, d.repositoryId, d.event, JSON.stringify(d.payload), d.state, d.detail, JSON.stringify(d.runIds), d.receivedAt],
      );
      return true;
    } catch (e) {
      if (/UNIQUE|duplicate key/i.test((e as Error).message) && (await this.deliveryById(d.repositoryId, d.id))) return false;
      throw e;
    }
  }

  /** By row key (what the queue carries). */
  async delivery(key: string): Promise<Delivery | null> {
    const rows = await this.db.all<DeliveryRow>('SELECT * FROM deliveries WHERE id = ?', [key]);
    return rows.length ? toDelivery(rows[0]) : null;
  }

  /** By the forge's delivery id, within one repository. */
  async deliveryById(repositoryId: string, deliveryId: string): Promise<Delivery | null> {
    const rows = await this.db.all<DeliveryRow>('SELECT * FROM deliveries WHERE repository_id = ? AND COALESCE(delivery_id, id) = ?', [
      repositoryId,
      deliveryId,
    ]);
    return rows.length ? toDelivery(rows[0]) : null;
  }

  async finishDelivery(key: string, state: Delivery['state'], detail: string | null, runIds: string[]): Promise<void> {
    await this.db.run('UPDATE deliveries SET state = ?, detail = ?, run_ids = ? WHERE id = ?', [state, detail, JSON.stringify(runIds), key]);
  }

  /** The last 100, as the API shows them (`id` is the forge's delivery id). */
  async deliveries(repositoryId: string): Promise<Omit<Delivery, 'payload' | 'key'>[]> {
    const rows = await this.db.all<DeliveryRow>('SELECT * FROM deliveries WHERE repository_id = ? ORDER BY received_at DESC LIMIT 100', [repositoryId]);
    return rows.map((r) => {
      const { key: _key, payload: _payload, ...view } = toDelivery({ ...r, payload: 'null' });
      return view;
    });
  }
}

function toDelivery(r: DeliveryRow): Delivery {
  return {
    key: r.id,
    id: r.delivery_id ?? r.id,
    repositoryId: r.repository_id,
    event: r.event,
    payload: JSON.parse(r.payload),
    state: r.state as Delivery['state'],
    detail: r.detail,
    runIds: r.run_ids ? JSON.parse(r.run_ids) : [],
    receivedAt: r.received_at,
  };
}

function toRepo(r: RepoRow): RegisteredRepository {
  return {
    id: r.id,
    ownerId: r.owner_id,
    fullName: r.full_name,
    cloneUrl: r.clone_url,
    secret: r.secret,
    branches: r.branches ? JSON.parse(r.branches) : null,
    labelMap: r.label_map ? JSON.parse(r.label_map) : {},
    statusUrl: r.status_url,
    statusToken: r.status_token,
    createdAt: r.created_at,
  };
}
