import { ApiPropertyOptional } from '@nestjs/swagger';
import { NumberFromText } from '../http/validate';
import { WORKFLOW_FILE } from '../workflow/model';
import { IsBoolean, IsIn, IsInt, IsNotEmpty, IsObject, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';

const JOB_ID = /^[A-Za-z_][A-Za-z0-9_-]{0,99}$/;
const PLATFORM = /^[A-Za-z0-9][A-Za-z0-9._-]*=[a-z0-9][a-z0-9.@-]*(,[A-Za-z0-9][A-Za-z0-9._-]*=[a-z0-9][a-z0-9.@-]*)*$/;

/** JSON body of POST /runs: a repository (`repo` + `ref`), or the quick form (`command`). */
export class SubmitRunDto {
  @ApiPropertyOptional({ description: 'https git URL of the repository' })
  @IsOptional()
  @IsString()
  @MaxLength(2048)
  repo?: string;

  @ApiPropertyOptional({ description: 'branch, tag or commit sha (with repo)' })
  @IsOptional()
  @IsString()
  @MaxLength(255)
  ref?: string;

  @ApiPropertyOptional({ description: 'workflow YAML; without it Kiln reads .kiln.yml or .github/workflows/*.yml from the source' })
  @IsOptional()
  @IsString()
  @MaxLength(256 * 1024)
  workflow?: string;

  @ApiPropertyOptional({ description: 'which workflow file of the source to run, e.g. .github/workflows/ci.yml' })
  @IsOptional()
  @Matches(WORKFLOW_FILE, { message: 'workflowFile must be .kiln.yml or .github/workflows/<name>.yml' })
  workflowFile?: string;

  @ApiPropertyOptional({ description: 'run only this job of the workflow (and the jobs it needs)' })
  @IsOptional()
  @Matches(JOB_ID, { message: 'job must be a job id of the workflow' })
  job?: string;

  @ApiPropertyOptional({ description: 'runs-on label -> environment, for this run only (like act -P)' })
  @IsOptional()
  @IsObject()
  platform?: Record<string, string>;

  @ApiPropertyOptional({ description: 'refuse the workflow if any job cannot run here (default: such jobs are kept as not runnable and the others run)' })
  @IsOptional()
  @IsBoolean({ message: 'strict must be true or false' })
  strict?: boolean;

  @ApiPropertyOptional({
    description: 'workflow_dispatch inputs, name -> string, number or boolean (at most 25, 64 KiB each); the run is a workflow_dispatch event',
  })
  @IsOptional()
  @IsObject()
  inputs?: Record<string, string | number | boolean>;

  @ApiPropertyOptional({ description: 'quick form: a command to run (bash by default)' })
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(64 * 1024)
  command?: string;

  @ApiPropertyOptional({ description: 'quick form: environment name, label or name@version (default: the default environment)' })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  environment?: string;

  @ApiPropertyOptional({ description: 'quick form: files to put in the workspace, path -> content (1 MiB each, 4 MiB in all, 1000 files)' })
  @IsOptional()
  @IsObject()
  files?: Record<string, string>;

  @ApiPropertyOptional({ enum: ['bash', 'sh', 'python'] })
  @IsOptional()
  @IsIn(['bash', 'sh', 'python'], { message: 'shell must be bash, sh or python' })
  shell?: 'bash' | 'sh' | 'python';

  @ApiPropertyOptional({ description: 'quick form: timeout in minutes' })
  @IsOptional()
  @NumberFromText()
  @IsInt()
  @Min(1)
  @Max(10080)
  timeoutMinutes?: number;
}

/** Text fields of a multipart submission (next to the `source` file). */
export class SubmitUploadDto {
  @IsOptional() @Matches(JOB_ID, { message: 'job must be a job id of the workflow' }) job?: string;
  @IsOptional() @Matches(PLATFORM, { message: 'platform must be LABEL=ENVIRONMENT pairs separated by commas' }) platform?: string;
  @IsOptional() @IsIn(['true', 'false'], { message: 'strict must be true or false' }) strict?: 'true' | 'false';
  @IsOptional() @IsString() @IsNotEmpty() @MaxLength(64 * 1024) command?: string;
  @IsOptional() @IsString() @MaxLength(100) environment?: string;
  @IsOptional() @IsIn(['bash', 'sh', 'python'], { message: 'shell must be bash, sh or python' }) shell?: 'bash' | 'sh' | 'python';
  @IsOptional() @NumberFromText() @IsInt() @Min(1) @Max(10080) timeoutMinutes?: number;
  @IsOptional() @IsString() @MaxLength(256 * 1024) workflow?: string;
  @IsOptional() @Matches(WORKFLOW_FILE, { message: 'workflowFile must be .kiln.yml or .github/workflows/<name>.yml' }) workflowFile?: string;
  @IsOptional() @Matches(/^[A-Za-z0-9._\/-]{1,255}$/, { message: 'ref must be a branch or tag name' }) ref?: string;
  @IsOptional() @Matches(/^[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+$/, { message: 'repository must look like owner/name' }) repository?: string;
  /** workflow_dispatch inputs: a JSON object of name -> value, as text. */
  @IsOptional() @IsString() inputs?: string;
}

export class LogsQuery {
  @ApiPropertyOptional({ description: 'job id (default: every job of the run)' })
  @IsOptional()
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'job must be a job id from the run' })
  job?: string;

  @ApiPropertyOptional({ description: 'only this step index' })
  @IsOptional()
  @NumberFromText()
  @IsInt()
  @Min(-1)
  @Max(1000)
  step?: number;

  @ApiPropertyOptional({ description: '1: stream as server-sent events until the job ends' })
  @IsOptional()
  @IsIn(['0', '1', 'true', 'false'], { message: 'follow must be 1 or 0' })
  follow?: string;

  @ApiPropertyOptional({ description: '1: the text form with the bytes as written (control characters not escaped), as an attachment to save' })
  @IsOptional()
  @IsIn(['0', '1', 'true', 'false'], { message: 'download must be 1 or 0' })
  download?: string;

  @ApiPropertyOptional({ enum: ['text', 'json'], description: 'text (default) or json lines' })
  @IsOptional()
  @IsIn(['text', 'json'], { message: 'format must be text or json' })
  format?: 'text' | 'json';
}

export class ListRunsQuery {
  @IsOptional() @NumberFromText() @IsInt() @Min(1) @Max(500) limit?: number;
}
