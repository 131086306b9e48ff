import { Module } from '@nestjs/common';
import { BaseImageProvider } from './base-image';
import { CatalogueBuilder } from './catalogue.builder';
import { GatewayImageBuilder } from './gateway.builder';
import { CatalogueController } from './catalogue.controller';
import { CatalogueRepository } from './catalogue.repository';
import { CatalogueService } from './catalogue.service';
import { PublishService } from './publish.service';

/** Manifests -> images -> reports: used by every role. */
@Module({
  providers: [CatalogueRepository, CatalogueService, CatalogueBuilder, GatewayImageBuilder, BaseImageProvider],
  exports: [CatalogueService, CatalogueBuilder, GatewayImageBuilder, CatalogueRepository],
})
export class CatalogueModule {}

/** The catalogue's HTTP side (public reads, admin publish): API roles only. */
@Module({
  imports: [CatalogueModule],
  controllers: [CatalogueController],
  providers: [PublishService],
})
export class CatalogueApiModule {}
