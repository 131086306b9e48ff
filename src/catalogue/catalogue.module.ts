import { Module } from '@nestjs/common';
import { BaseImageProvider } from './base-image';
import { CatalogueBuilder } from './catalogue.builder';
import { CatalogueController } from './catalogue.controller';
import { CatalogueRepository } from './catalogue.repository';
import { CatalogueService } from './catalogue.service';

@Module({
  controllers: [CatalogueController],
  providers: [CatalogueRepository, CatalogueService, CatalogueBuilder, BaseImageProvider],
  exports: [CatalogueService, CatalogueBuilder],
})
export class CatalogueModule {}
