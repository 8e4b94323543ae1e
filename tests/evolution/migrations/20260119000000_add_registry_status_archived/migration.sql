-- AlterEnum
ALTER TYPE "registry_status" ADD VALUE 'ARCHIVED';
