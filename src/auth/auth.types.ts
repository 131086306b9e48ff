export interface Quota {
  /** Jobs of this user running (or handed to a worker) at once; more wait, pending. */
  concurrentJobs: number;
  /** Runs of this user not yet completed; more are refused (429). */
  queuedRuns: number;
  /** Submissions per minute; more are refused (429 with Retry-After). */
  submissionsPerMinute: number;
  /**
   * Bytes this user may hold in storage: artifacts kept and the sources of runs not yet concluded;
   * submissions and artifacts beyond are refused. (The name predates sources counting in it.)
   */
  artifactBytes: number;
  /** Repositories registered for push builds under this user; more are refused (403). */
  repositories: number;
  /** Active tokens (neither revoked nor expired), including those an admin issued for the user. */
  tokens: number;
  /** Stored secrets. */
  secrets: number;
}

export interface User {
  id: string;
  name: string;
  isAdmin: boolean;
  quota: Partial<Quota>;
  createdAt: string;
}

export interface TokenInfo {
  id: string;
  userId: string;
  name: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

/** What a request carries once its token was checked. */
export interface Principal {
  user: User;
  tokenId: string;
}

/** What a user holds in storage (bytes). Implemented where runs are recorded; the auth room only asks. */
export interface StorageMeter {
  usage(userId: string): Promise<{ artifacts: number; sources: number }>;
}
